#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use medic_api::{
    router, ApiError, ApiState, Auth, ControlRequest, ErrorCode, Metrics, CODES,
    OPENMETRICS_CONTENT_TYPE, PROMETHEUS_CONTENT_TYPE,
};
use medic_core::{Ack, ActionStage, ActionStatus, Mode, OperatorCommand, OperatorError, Role};
use medic_store::{IncidentRecord, Store, TimelineEntry};
use serde_json::{json, Value};
use tokio::sync::mpsc;

struct Api {
    base: String,
    client: reqwest::Client,
    state: ApiState,
    /// An admin token, sent by `get` and `post_raw`.
    token: String,
    _dir: tempfile::TempDir,
}

/// Starts the API on 127.0.0.1:0 over a real temp SQLite store. The control
/// receiver is returned so each test decides how the "daemon" answers.
async fn start() -> (Api, mpsc::Receiver<ControlRequest>) {
    start_with(Auth::Tokens).await
}

async fn start_with(auth: Auth) -> (Api, mpsc::Receiver<ControlRequest>) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("medic.db")).await.unwrap();
    let (tx, rx) = mpsc::channel(8);
    let state = ApiState {
        store,
        metrics: Arc::new(Metrics::new()),
        ready: Arc::new(AtomicBool::new(true)),
        control: tx,
        auth,
    };
    let token = state
        .store
        .create_token("root", Role::Admin, "2026-01-01T00:00:00Z")
        .await
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = router(state.clone());
    tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    (
        Api {
            base: format!("http://{addr}"),
            client: reqwest::Client::new(),
            state,
            token,
            _dir: dir,
        },
        rx,
    )
}

impl Api {
    async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .send()
            .await
            .unwrap()
    }
    async fn post_raw(&self, path: &str, ct: Option<&str>, body: &str) -> reqwest::Response {
        let mut req = self
            .client
            .post(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .body(body.to_string());
        if let Some(ct) = ct {
            req = req.header("content-type", ct);
        }
        req.send().await.unwrap()
    }
}

/// Asserts a JSON error response and returns its `error` object.
async fn assert_error(resp: reqwest::Response, status: u16, code: &str, name: &str) -> Value {
    assert_eq!(resp.status().as_u16(), status);
    let ct = resp.headers()["content-type"].to_str().unwrap().to_string();
    assert!(ct.starts_with("application/json"), "{ct}");
    let body: Value = resp.json().await.unwrap();
    let err = body["error"].clone();
    assert_eq!(err["code"], code, "{body}");
    assert_eq!(err["name"], name, "{body}");
    assert!(!err["message"].as_str().unwrap().is_empty());
    assert_eq!(
        body.as_object().unwrap().len(),
        1,
        "only `error` at top level"
    );
    err
}

fn incident(id: &str, opened_at: &str) -> IncidentRecord {
    IncidentRecord {
        id: id.into(),
        service: "web".into(),
        state: "resolved".into(),
        trigger: "healthz".into(),
        opened_at: opened_at.into(),
        updated_at: opened_at.into(),
        closed_at: Some(opened_at.into()),
        outcome: Some("restarted".into()),
        summary: "web restarted".into(),
        merged: Vec::new(),
        diagnosis: None,
        timeline: vec![
            TimelineEntry {
                ts: opened_at.into(),
                kind: "opened".into(),
                message: "healthz failed".into(),
            },
            TimelineEntry {
                ts: opened_at.into(),
                kind: "action".into(),
                message: "restart ok".into(),
            },
        ],
    }
}

#[tokio::test]
async fn healthz_and_readyz_follow_the_ready_flag() {
    let (api, _rx) = start().await;
    let resp = api.get("/healthz").await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.text().await.unwrap(), "ok");
    assert_eq!(api.get("/readyz").await.status(), 200);

    api.state.ready.store(false, Ordering::SeqCst);
    let resp = api.get("/readyz").await;
    assert_eq!(resp.headers()["retry-after"], "1");
    assert_error(resp, 503, "E0503", "not_ready").await;
    assert_eq!(api.get("/healthz").await.status(), 200);
}

#[tokio::test]
async fn metrics_text_has_all_medic_metrics() {
    let (api, _rx) = start().await;
    let m = &api.state.metrics;
    m.inc_action("restart", ActionStage::Direct, ActionStatus::Succeeded);
    m.inc_action("restart", ActionStage::Direct, ActionStatus::Succeeded);
    m.inc_incident();
    m.inc_probe_failure("web", "healthz");
    m.inc_audit();
    let resp = api.get("/metrics").await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], PROMETHEUS_CONTENT_TYPE);
    let text = resp.text().await.unwrap();
    for needle in [
        r#"medic_actions_total{action="restart",reason="direct",outcome="succeeded"} 2"#,
        "# TYPE medic_actions_total counter",
        "medic_incidents_total 1",
        r#"medic_probe_failures_total{service="web",probe="healthz"} 1"#,
        "medic_audit_records_total 1",
        r#"medic_mode{mode="dry-run"} 0"#,
        "medic_outbox_depth 0",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in\n{text}");
    }
    assert!(!text.contains("# EOF"));
    assert_eq!(text, m.encode_prometheus());
    // OpenMetrics when asked for.
    let resp = api
        .client
        .get(format!("{}/metrics", api.base))
        .bearer_auth(&api.token)
        .header("accept", "application/openmetrics-text; version=1.0.0")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["content-type"], OPENMETRICS_CONTENT_TYPE);
    let text = resp.text().await.unwrap();
    assert!(text.ends_with("# EOF\n"), "{text}");
    assert_eq!(text, m.encode());
}

#[tokio::test]
async fn incidents_list_and_detail_from_the_store() {
    let (api, _rx) = start().await;
    let body: Value = api.get("/api/v1/incidents").await.json().await.unwrap();
    assert_eq!(body, json!({"incidents": []}));

    for (id, at) in [
        ("i-1", "2026-01-01T00:00:00Z"),
        ("i-2", "2026-01-02T00:00:00Z"),
        ("i-3", "2026-01-03T00:00:00Z"),
    ] {
        let mut rec = incident(id, at);
        if id == "i-1" {
            rec.merged = vec!["api".into(), "edge".into()];
        }
        if id == "i-3" {
            rec.diagnosis = Some(medic_store::IncidentCause {
                service: "db".into(),
                pattern: "dependency_slow".into(),
            });
        }
        api.state.store.upsert_incident(&rec).await.unwrap();
    }
    let resp = api.get("/api/v1/incidents?limit=2").await;
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    let list = body["incidents"].as_array().unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(list[0]["id"], "i-3");
    assert_eq!(list[1]["id"], "i-2");
    assert_eq!(
        list[0],
        json!({
            "id": "i-3", "service": "web", "state": "resolved", "trigger": "healthz",
            "opened_at": "2026-01-03T00:00:00Z", "updated_at": "2026-01-03T00:00:00Z",
            "closed_at": "2026-01-03T00:00:00Z", "outcome": "restarted", "summary": "web restarted",
            "diagnosis": {"service": "db", "pattern": "dependency_slow"}
        })
    );

    let resp = api.get("/api/v1/incidents/i-1").await;
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["id"], "i-1");
    assert_eq!(body["service"], "web");
    // The services whose incidents were merged into this one (issue 9).
    assert_eq!(body["merged_services"], json!(["api", "edge"]));
    let other: Value = api.get("/api/v1/incidents/i-2").await.json().await.unwrap();
    assert_eq!(other["merged_services"], json!([]));
    assert_eq!(
        body["timeline"],
        json!([
            {"ts": "2026-01-01T00:00:00Z", "kind": "opened", "message": "healthz failed"},
            {"ts": "2026-01-01T00:00:00Z", "kind": "action", "message": "restart ok"}
        ])
    );
}

#[tokio::test]
async fn unknown_incident_is_a_404_json_error() {
    let (api, _rx) = start().await;
    let err = assert_error(
        api.get("/api/v1/incidents/does-not-exist").await,
        404,
        "E0404",
        "incident_not_found",
    )
    .await;
    assert_eq!(err["field"], "id");
    assert!(err["message"].as_str().unwrap().contains("does-not-exist"));
}

#[tokio::test]
async fn bad_query_parameters_name_the_field() {
    let (api, _rx) = start().await;
    for path in [
        "/api/v1/incidents?limit=abc",
        "/api/v1/incidents?limit=0",
        "/api/v1/incidents?limit=100000",
        "/api/v1/audit?limit=-1",
    ] {
        let err = assert_error(api.get(path).await, 422, "E0422", "invalid_field").await;
        assert_eq!(err["field"], "limit", "{path}");
    }
    let err = assert_error(
        api.get("/api/v1/audit?after=x").await,
        422,
        "E0422",
        "invalid_field",
    )
    .await;
    assert_eq!(err["field"], "after");
}

#[tokio::test]
async fn audit_pages_through_the_chain() {
    let (api, _rx) = start().await;
    let body: Value = api.get("/api/v1/audit").await.json().await.unwrap();
    assert_eq!(body, json!({"records": [], "next_after": 0}));
    for i in 0..5 {
        api.state
            .store
            .append_audit(
                "2026-01-01T00:00:00Z",
                "action.restart",
                &format!(r#"{{"i": {i}}}"#),
            )
            .await
            .unwrap();
    }
    let body: Value = api
        .get("/api/v1/audit?after=1&limit=2")
        .await
        .json()
        .await
        .unwrap();
    let recs = body["records"].as_array().unwrap();
    assert_eq!(recs.len(), 2);
    assert_eq!(recs[0]["seq"], 2);
    assert_eq!(recs[1]["seq"], 3);
    assert_eq!(body["next_after"], 3);
    // Payload is embedded as JSON, verbatim.
    assert_eq!(recs[0]["payload"], json!({"i": 1}));
    assert_eq!(recs[0]["kind"], "action.restart");
    assert_eq!(recs[1]["prev_hash"], recs[0]["hash"]);
    assert_eq!(recs[0]["hash"].as_str().unwrap().len(), 64);
    let text = api
        .get("/api/v1/audit?after=1&limit=1")
        .await
        .text()
        .await
        .unwrap();
    assert!(text.contains(r#""payload":{"i": 1}"#), "{text}");

    let body: Value = api.get("/api/v1/audit?after=5").await.json().await.unwrap();
    assert_eq!(body, json!({"records": [], "next_after": 5}));
}

#[tokio::test]
async fn set_mode_round_trips_through_the_control_channel() {
    let (api, mut rx) = start().await;
    let daemon = tokio::spawn(async move {
        let mut seen = Vec::new();
        while let Some(req) = rx.recv().await {
            match req {
                ControlRequest::Operate { actor, cmd, reply } => {
                    let OperatorCommand::SetMode { service, mode } = cmd else {
                        panic!("unexpected {cmd:?}");
                    };
                    seen.push((actor.id.clone(), service.clone(), mode));
                    let answer = match service.as_deref() {
                        Some("nope") => Err(OperatorError::UnknownService("nope".into())),
                        _ => Ok(Ack {
                            message: format!("mode set to {mode}"),
                        }),
                    };
                    let _ = reply.send(answer);
                }
                ControlRequest::Query { .. } | ControlRequest::RecordChange { .. } => {}
            }
            if seen.len() == 3 {
                break;
            }
        }
        seen
    });

    let resp = api
        .post_raw(
            "/api/v1/mode",
            Some("application/json"),
            r#"{"mode":"dry-run","service":null}"#,
        )
        .await;
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(
        body,
        json!({"mode": "dry-run", "service": null, "message": "mode set to dry-run", "actor": "root"})
    );

    // The actor is the token's name; never the body.
    let alice = api
        .state
        .store
        .create_token("alice", Role::Admin, "2026-01-01T00:00:00Z")
        .await
        .unwrap();
    let resp = reqwest::Client::new()
        .post(format!("{}/api/v1/mode", api.base))
        .header("content-type", "application/json; charset=utf-8")
        .bearer_auth(&alice)
        .body(r#"{"mode":"dry-run","service":"web"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["actor"], "alice");

    // A mode that does not parse never reaches the engine.
    let err = assert_error(
        api.post_raw(
            "/api/v1/mode",
            Some("application/json"),
            r#"{"mode":"nonsense"}"#,
        )
        .await,
        422,
        "E0422",
        "invalid_field",
    )
    .await;
    assert_eq!(err["field"], "mode");

    // The engine's refusal, mapped by its variant, with its code.
    let err = assert_error(
        api.post_raw(
            "/api/v1/mode",
            Some("application/json"),
            r#"{"mode":"aggressive","service":"nope"}"#,
        )
        .await,
        422,
        "E0422",
        "invalid_field",
    )
    .await;
    assert_eq!(err["field"], "service");
    assert_eq!(err["reason_code"], "unknown_service");

    let seen = daemon.await.unwrap();
    assert_eq!(
        seen,
        vec![
            ("root".to_string(), None, Mode::DryRun),
            ("alice".to_string(), Some("web".to_string()), Mode::DryRun),
            (
                "root".to_string(),
                Some("nope".to_string()),
                Mode::Aggressive
            ),
        ]
    );
}

#[tokio::test]
async fn malformed_mode_bodies_are_json_errors() {
    let (api, _rx) = start().await;
    let ct = Some("application/json");
    // Syntax error → E0400 with serde's message.
    let err = assert_error(
        api.post_raw("/api/v1/mode", ct, r#"{"mode": "#).await,
        400,
        "E0400",
        "bad_request",
    )
    .await;
    assert!(err["message"].as_str().unwrap().contains("EOF"), "{err}");
    assert_error(
        api.post_raw("/api/v1/mode", ct, r#"{"mode":"x"} trailing"#)
            .await,
        400,
        "E0400",
        "bad_request",
    )
    .await;
    // Shape errors → E0422 naming the field.
    for (body, field) in [
        (r#"{"mode": 5}"#, "mode"),
        (r#"{"service": null}"#, "mode"),
        (r#"{"mode": "dry-run", "service": 7}"#, "service"),
        (r#"{"mode": "dry-run", "extra": 1}"#, "extra"),
        (r#"{"mode": ""}"#, "mode"),
        (r#"{"mode": "dry-run", "service": " "}"#, "service"),
    ] {
        let err = assert_error(
            api.post_raw("/api/v1/mode", ct, body).await,
            422,
            "E0422",
            "invalid_field",
        )
        .await;
        assert_eq!(err["field"], field, "{body}: {err}");
    }
    let err = assert_error(
        api.post_raw("/api/v1/mode", ct, "[1,2]").await,
        400,
        "E0400",
        "bad_request",
    )
    .await;
    assert!(err["message"].as_str().unwrap().contains("invalid"));
    assert!(err.get("field").is_none());
    // Wrong or missing content type.
    assert_error(
        api.post_raw("/api/v1/mode", Some("text/plain"), r#"{"mode":"dry-run"}"#)
            .await,
        415,
        "E0415",
        "unsupported_media_type",
    )
    .await;
    assert_error(
        api.post_raw("/api/v1/mode", None, r#"{"mode":"dry-run"}"#)
            .await,
        415,
        "E0415",
        "unsupported_media_type",
    )
    .await;
    // Too large.
    let huge = format!(r#"{{"mode":"{}"}}"#, "a".repeat(100 * 1024));
    assert_error(
        api.post_raw("/api/v1/mode", ct, &huge).await,
        413,
        "E0413",
        "payload_too_large",
    )
    .await;
}

#[tokio::test]
async fn set_mode_without_a_control_loop_is_503() {
    let (api, rx) = start().await;
    drop(rx);
    let resp = api
        .post_raw(
            "/api/v1/mode",
            Some("application/json"),
            r#"{"mode":"dry-run"}"#,
        )
        .await;
    assert_eq!(resp.headers()["retry-after"], "1");
    assert_error(resp, 503, "E0502", "control_unavailable").await;
}

#[tokio::test]
async fn set_mode_reply_dropped_is_503() {
    let (api, mut rx) = start().await;
    tokio::spawn(async move {
        // Receive and drop the request without replying.
        while let Some(req) = rx.recv().await {
            drop(req);
        }
    });
    assert_error(
        api.post_raw(
            "/api/v1/mode",
            Some("application/json"),
            r#"{"mode":"dry-run"}"#,
        )
        .await,
        503,
        "E0502",
        "control_unavailable",
    )
    .await;
}

#[tokio::test]
async fn unknown_routes_and_methods_are_json_errors() {
    let (api, _rx) = start().await;
    assert_error(
        api.get("/api/v2/nothing").await,
        404,
        "E0401",
        "route_not_found",
    )
    .await;
    let resp = api
        .client
        .delete(format!("{}/api/v1/incidents", api.base))
        .send()
        .await
        .unwrap();
    assert_error(resp, 405, "E0405", "method_not_allowed").await;
    assert_error(
        api.get("/api/v1/mode").await,
        405,
        "E0405",
        "method_not_allowed",
    )
    .await;
}

#[tokio::test]
async fn store_failure_is_a_500_json_error() {
    // With tokens, the store is asked first (to authenticate): a failure
    // there is a 500, not a 401.
    let (api, _rx) = start().await;
    api.state.store.close().await;
    let err = assert_error(api.get("/api/v1/incidents").await, 500, "E0500", "internal").await;
    assert!(
        err["message"].as_str().unwrap().contains("authenticate"),
        "{err}"
    );
    let (api, _rx) = start_with(Auth::None).await;
    api.state.store.close().await;
    let err = assert_error(api.get("/api/v1/incidents").await, 500, "E0500", "internal").await;
    assert!(
        err["message"].as_str().unwrap().contains("list_incidents"),
        "{err}"
    );
}

#[test]
fn error_codes_and_names_are_unique_and_consistent() {
    let codes: HashSet<_> = CODES.iter().map(|c| c.code).collect();
    let names: HashSet<_> = CODES.iter().map(|c| c.name).collect();
    assert_eq!(codes.len(), CODES.len(), "duplicate code");
    assert_eq!(names.len(), CODES.len(), "duplicate name");
    assert_eq!(ErrorCode::ALL.len(), CODES.len());
    for (variant, info) in ErrorCode::ALL.iter().zip(CODES) {
        assert_eq!(variant.info(), *info);
        assert_eq!(variant.status().as_u16(), info.status);
    }
    for c in CODES {
        assert!(c.code.len() == 5 && c.code.starts_with('E'), "{}", c.code);
        assert!(c.code[1..].chars().all(|d| d.is_ascii_digit()));
        // E0001..E0399 are reserved for the binary's config/CLI errors.
        let n: u32 = c.code[1..].parse().unwrap();
        assert!(
            (400..600).contains(&n),
            "{} is in the reserved range",
            c.code
        );
        assert!(c
            .name
            .chars()
            .all(|ch| ch.is_ascii_lowercase() || ch == '_'));
        assert!(!c.description.is_empty());
        assert!((400..600).contains(&c.status));
    }
    for (code, name) in [
        ("E0400", "bad_request"),
        ("E0404", "incident_not_found"),
        ("E0409", "conflict"),
        ("E0422", "invalid_field"),
        ("E0500", "internal"),
        ("E0503", "not_ready"),
    ] {
        assert!(
            CODES.iter().any(|c| c.code == code && c.name == name),
            "{code} {name}"
        );
    }
    let e = ApiError::invalid_field("mode", "bad");
    assert_eq!(e.to_string(), "E0422 invalid_field: bad");
    let body = serde_json::to_value(e.body()).unwrap();
    assert_eq!(
        body,
        json!({"error": {"code": "E0422", "name": "invalid_field", "message": "bad", "field": "mode"}})
    );
    let no_field = serde_json::to_value(ApiError::internal("x").body()).unwrap();
    assert!(no_field["error"].get("field").is_none());
}

/// `POST /api/v1/changes` (issue 9): a valid change reaches the daemon with
/// the token's name as `by`; bad fields are `E0422` naming the field and
/// never reach it; an unknown service is `404 E0482 service_not_found`; a
/// viewer may not record one.
#[tokio::test]
async fn a_change_is_recorded_through_the_control_channel() {
    use medic_api::changes::{ChangeKind, ChangeRefusal, ChangeReply};
    let (api, mut rx) = start().await;
    let daemon = tokio::spawn(async move {
        let mut seen = Vec::new();
        while let Some(req) = rx.recv().await {
            let ControlRequest::RecordChange { change, reply } = req else {
                panic!("unexpected request");
            };
            seen.push(change.clone());
            let answer = if change.service == "api" {
                Ok(ChangeReply {
                    service: change.service,
                    kind: change.kind.as_str().into(),
                    version: change.version,
                    by: change.by,
                    diagnosis: true,
                    message: "recorded".into(),
                })
            } else {
                Err(ChangeRefusal::UnknownService(change.service))
            };
            let _ = reply.send(answer);
            if seen.len() == 3 {
                break;
            }
        }
        seen
    });
    let ct = Some("application/json");
    let resp = api
        .post_raw(
            "/api/v1/changes",
            ct,
            r#"{"service":"api","kind":"deploy","version":" v2.1 ","note":"ci #88"}"#,
        )
        .await;
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["service"], "api");
    assert_eq!(body["kind"], "deploy");
    assert_eq!(body["version"], "v2.1");
    assert_eq!(body["by"], "root");
    // Optional fields may be left out.
    let resp = api
        .post_raw(
            "/api/v1/changes",
            ct,
            r#"{"service":"api","kind":"config"}"#,
        )
        .await;
    assert_eq!(resp.status(), 200);
    // Bad input, each naming its field, never reaching the daemon.
    for (body, field) in [
        (r#"{"kind":"deploy"}"#, "service"),
        (r#"{"service":" ","kind":"deploy"}"#, "service"),
        (r#"{"service":"api","kind":"restart"}"#, "kind"),
        (r#"{"service":"api"}"#, "kind"),
        (
            r#"{"service":"api","kind":"deploy","version":7}"#,
            "version",
        ),
        (r#"{"service":"api","kind":"deploy","when":"now"}"#, "when"),
    ] {
        let err = assert_error(
            api.post_raw("/api/v1/changes", ct, body).await,
            422,
            "E0422",
            "invalid_field",
        )
        .await;
        assert_eq!(err["field"], field, "{body}");
    }
    let long = format!(
        r#"{{"service":"api","kind":"deploy","version":"{}"}}"#,
        "v".repeat(medic_api::changes::MAX_VERSION_CHARS + 1)
    );
    let err = assert_error(
        api.post_raw("/api/v1/changes", ct, &long).await,
        422,
        "E0422",
        "invalid_field",
    )
    .await;
    assert_eq!(err["field"], "version");
    // Unknown service: the daemon's refusal.
    let err = assert_error(
        api.post_raw(
            "/api/v1/changes",
            ct,
            r#"{"service":"nope","kind":"deploy"}"#,
        )
        .await,
        404,
        "E0482",
        "service_not_found",
    )
    .await;
    assert_eq!(err["field"], "service");
    // A viewer may not record a change.
    let viewer = api
        .state
        .store
        .create_token("vic", Role::Viewer, "2026-01-01T00:00:00Z")
        .await
        .unwrap();
    let resp = reqwest::Client::new()
        .post(format!("{}/api/v1/changes", api.base))
        .bearer_auth(&viewer)
        .json(&json!({"service": "api", "kind": "deploy"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    let seen = daemon.await.unwrap();
    assert_eq!(seen.len(), 3);
    assert_eq!(seen[0].kind, ChangeKind::Deploy);
    assert_eq!(seen[0].note.as_deref(), Some("ci #88"));
    assert_eq!(seen[1].kind, ChangeKind::Config);
    assert_eq!(seen[1].version, None);
    assert_eq!(seen[2].service, "nope");
}

/// `GET /api/v1/changes` (issue 9): the `change.recorded` audit records,
/// newest first, per service, bounded by `limit`; viewers may read them; a
/// bad query parameter is an E0422 naming it.
#[tokio::test]
async fn changes_are_listed_from_the_audit_newest_first() {
    let (api, _rx) = start().await;
    let body: Value = api.get("/api/v1/changes").await.json().await.unwrap();
    assert_eq!(body, json!({"changes": []}));
    let record = |ts: &str, payload: Value| {
        let store = api.state.store.clone();
        let (ts, payload) = (ts.to_string(), payload.to_string());
        async move {
            store
                .append_audit(&ts, "change.recorded", &payload)
                .await
                .unwrap();
        }
    };
    record(
        "2026-01-01T00:00:00Z",
        json!({"service": "db", "kind": "deploy", "version": "v1", "note": null, "by": "ci", "v": 1}),
    )
    .await;
    api.state
        .store
        .append_audit(
            "2026-01-01T00:00:01Z",
            "mode.changed",
            r#"{"mode":"dry-run"}"#,
        )
        .await
        .unwrap();
    record(
        "2026-01-01T00:00:02Z",
        json!({"service": "api", "kind": "config", "version": null, "note": "<b>tls</b>", "by": "ops", "v": 1}),
    )
    .await;
    record(
        "2026-01-01T00:00:03Z",
        json!({"service": "db", "kind": "deploy", "version": "v2", "note": null, "by": "ci", "v": 1}),
    )
    .await;
    let viewer = api
        .state
        .store
        .create_token("eyes", Role::Viewer, "2026-01-01T00:00:00Z")
        .await
        .unwrap();
    let get_as = |path: &str| {
        api.client
            .get(format!("{}{path}", api.base))
            .bearer_auth(&viewer)
            .send()
    };
    let resp = get_as("/api/v1/changes").await.unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let body: Value = resp.json().await.unwrap();
    let versions: Vec<&Value> = body["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| &c["version"])
        .collect();
    assert_eq!(versions, [&json!("v2"), &Value::Null, &json!("v1")]);
    assert_eq!(
        body["changes"][1],
        json!({"service": "api", "kind": "config", "version": null,
               "note": "<b>tls</b>", "by": "ops", "at": "2026-01-01T00:00:02Z"})
    );
    let body: Value = get_as("/api/v1/changes?service=db&limit=1")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        body["changes"],
        json!([{"service": "db", "kind": "deploy", "version": "v2", "note": null,
                "by": "ci", "at": "2026-01-01T00:00:03Z"}])
    );
    let body: Value = api
        .get("/api/v1/changes?service=web")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(body, json!({"changes": []}));
    for (path, field) in [
        ("/api/v1/changes?limit=0", "limit"),
        ("/api/v1/changes?limit=501", "limit"),
        ("/api/v1/changes?limit=x", "limit"),
        ("/api/v1/changes?service=", "service"),
        ("/api/v1/changes?services=db", "services"),
    ] {
        let err = assert_error(api.get(path).await, 422, "E0422", "invalid_field").await;
        assert_eq!(err["field"], field, "{path}");
    }
    // Without a token: refused.
    let resp = api
        .client
        .get(format!("{}/api/v1/changes", api.base))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 401);
}
