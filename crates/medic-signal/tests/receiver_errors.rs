//! Every error of the API as the daemon mounts it (medic-api's router with the
//! Alertmanager receiver merged in) is a JSON error from medic-api's code table.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use axum::body::Body;
use axum::http::{header, Request};
use axum::Router;
use medic_api::{ApiState, Metrics, CODES};
use medic_core::ProbeReport;
use medic_signal::alertmanager::MAX_BODY;
use medic_signal::{SignalHooks, WEBHOOK_PATH};
use serde_json::Value;
use tower::ServiceExt;

/// medic-api's router with the receiver merged in, as `medic run` builds it.
async fn app(dir: &tempfile::TempDir) -> (Router, SignalHooks) {
    let store = medic_store::Store::open(&dir.path().join("medic.db"))
        .await
        .unwrap();
    let (control, _rx) = tokio::sync::mpsc::channel(1);
    let api = medic_api::router(ApiState {
        store,
        metrics: Arc::new(Metrics::new()),
        ready: Arc::new(AtomicBool::new(true)),
        control,
        auth: medic_api::Auth::Tokens,
    });
    let (hooks, _events) = SignalHooks::new();
    let (tx, _reports) = tokio::sync::mpsc::channel::<ProbeReport>(8);
    let cfg = medic_config::SignalsConfig::default();
    let app = api.merge(medic_signal::alertmanager_router(&cfg, tx, &hooks));
    (app, hooks)
}

/// Sends `req`, asserts a JSON error with `status` and `code` (and the code's
/// name from the table), returns the `error` object.
async fn json_error(app: &Router, req: Request<Body>, status: u16, code: &str) -> Value {
    let what = format!("{} {}", req.method(), req.uri());
    let resp = app.clone().oneshot(req).await.unwrap();
    assert_eq!(resp.status().as_u16(), status, "{what}");
    let ct = resp.headers()[header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .to_string();
    assert!(ct.starts_with("application/json"), "content-type {ct}");
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
        .await
        .unwrap();
    let v: Value = serde_json::from_slice(&bytes)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&bytes)));
    let err = v["error"].clone();
    assert_eq!(err["code"], code, "{v}");
    let row = CODES.iter().find(|c| c.code == code).unwrap();
    assert_eq!(err["name"], row.name, "{v}");
    assert_eq!(row.status, status);
    assert!(!err["message"].as_str().unwrap().is_empty(), "{v}");
    err
}

#[tokio::test]
async fn ten_megabytes_to_the_receiver_is_a_413_json_error() {
    let dir = tempfile::tempdir().unwrap();
    let (app, hooks) = app(&dir).await;
    let body = vec![b' '; 10 << 20];
    let req = Request::post(WEBHOOK_PATH)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body))
        .unwrap();
    let err = json_error(&app, req, 413, "E0413").await;
    assert_eq!(err["field"], "body");
    assert_eq!(
        err["message"],
        format!("body exceeds {MAX_BODY} bytes"),
        "{err}"
    );
    assert_eq!(hooks.metrics.webhook_rejected.load(Ordering::Relaxed), 1);

    // Just under the limit is read and judged on its content instead (blank is not JSON).
    let req = Request::post(WEBHOOK_PATH)
        .body(Body::from(vec![b' '; MAX_BODY]))
        .unwrap();
    let err = json_error(&app, req, 400, "E0400").await;
    assert_eq!(err["field"], "body");
}

#[tokio::test]
async fn wrong_method_unknown_route_and_bad_json_are_json_errors() {
    let dir = tempfile::tempdir().unwrap();
    let (app, _hooks) = app(&dir).await;
    // A wrong method on the receiver's route (merged in after the API's routes).
    let req = Request::get(WEBHOOK_PATH).body(Body::empty()).unwrap();
    let err = json_error(&app, req, 405, "E0405").await;
    assert_eq!(
        err["message"],
        format!("GET is not allowed on {WEBHOOK_PATH}")
    );
    // ... and on an API route.
    let req = Request::delete("/api/v1/incidents")
        .body(Body::empty())
        .unwrap();
    json_error(&app, req, 405, "E0405").await;
    // No such route, under the receiver's prefix and elsewhere.
    for path in ["/api/v1/alerts/nope", "/nowhere"] {
        let req = Request::post(path).body(Body::from("{}")).unwrap();
        let err = json_error(&app, req, 404, "E0401").await;
        assert_eq!(err["message"], format!("no route for {path}"));
    }
    // Bad JSON and a wrong shape, on the receiver.
    let req = Request::post(WEBHOOK_PATH)
        .body(Body::from("not json"))
        .unwrap();
    json_error(&app, req, 400, "E0400").await;
    let req = Request::post(WEBHOOK_PATH)
        .body(Body::from(
            r#"{"version":"4","alerts":[{"status":"maybe","labels":{}}]}"#,
        ))
        .unwrap();
    let err = json_error(&app, req, 422, "E0422").await;
    assert_eq!(err["field"], "alerts[0].status");
}
