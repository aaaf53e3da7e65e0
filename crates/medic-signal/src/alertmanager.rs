//! Alertmanager webhook receiver (`POST /api/v1/alerts/alertmanager`).
//!
//! Accepts Alertmanager's webhook payload (version "4"). Each alert is routed
//! to a service by a label (`service` unless configured otherwise); its
//! `alertname` is the virtual probe. A firing alert becomes a failing report,
//! a resolved one a healthy report. Alerts for unknown services or alert names
//! not listed in the config are counted and ignored.
//!
//! Bad input never panics: it is answered with the API's JSON error shape,
//! naming the offending field.
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use medic_api::{ApiError, ErrorCode};
use medic_config::AlertmanagerConfig;
use medic_core::{ProbeFailure, ProbeReport};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use crate::shed::{admit, Priority, MAX_CONCURRENT_WEBHOOKS};
use crate::SignalHooks;

/// The route the receiver answers on.
pub const WEBHOOK_PATH: &str = "/api/v1/alerts/alertmanager";
/// Most alerts accepted in one notification.
pub const MAX_ALERTS: usize = 1000;
/// Largest accepted body.
pub const MAX_BODY: usize = 4 << 20;
/// How long the handler waits for room in the report queue.
pub const QUEUE_WAIT: Duration = Duration::from_secs(2);

/// Alertmanager webhook payload, version 4. Unknown fields are ignored.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WebhookPayload {
    pub version: String,
    #[serde(default)]
    pub group_key: String,
    #[serde(default)]
    pub truncated_alerts: u64,
    #[serde(default)]
    pub status: String,
    #[serde(default)]
    pub receiver: String,
    #[serde(default)]
    pub group_labels: BTreeMap<String, String>,
    #[serde(default)]
    pub common_labels: BTreeMap<String, String>,
    #[serde(default)]
    pub common_annotations: BTreeMap<String, String>,
    #[serde(default, rename = "externalURL")]
    pub external_url: String,
    pub alerts: Vec<WebhookAlert>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WebhookAlert {
    pub status: AlertStatus,
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    #[serde(default)]
    pub starts_at: String,
    #[serde(default)]
    pub ends_at: String,
    #[serde(default, rename = "generatorURL")]
    pub generator_url: String,
    #[serde(default)]
    pub fingerprint: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertStatus {
    Firing,
    Resolved,
}

/// Why a webhook body was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebhookError {
    #[error("invalid JSON at `{field}`: {message}")]
    Invalid { field: String, message: String },
    #[error("unsupported webhook version `{0}` (expected \"4\")")]
    Version(String),
    #[error("too many alerts: {0} (at most {MAX_ALERTS})")]
    TooMany(usize),
}

impl WebhookError {
    /// The input field at fault.
    pub fn field(&self) -> &str {
        match self {
            WebhookError::Invalid { field, .. } => field,
            WebhookError::Version(_) => "version",
            WebhookError::TooMany(_) => "alerts",
        }
    }
}

/// Parse and check a webhook body.
pub fn parse_webhook(body: &[u8]) -> Result<WebhookPayload, WebhookError> {
    let mut de = serde_json::Deserializer::from_slice(body);
    let payload: WebhookPayload = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let message = inner.to_string();
        let base = if path == "." || path.is_empty() {
            None
        } else {
            Some(path)
        };
        // serde names a missing field in the message; point at it.
        let missing = message
            .strip_prefix("missing field `")
            .and_then(|m| m.split('`').next())
            .map(str::to_string);
        let field = match (base, missing) {
            (Some(b), Some(m)) => format!("{b}.{m}"),
            (None, Some(m)) => m,
            (Some(b), None) => b,
            (None, None) => "body".to_string(),
        };
        WebhookError::Invalid { field, message }
    })?;
    de.end().map_err(|e| WebhookError::Invalid {
        field: "body".into(),
        message: e.to_string(),
    })?;
    if payload.version != "4" {
        return Err(WebhookError::Version(payload.version));
    }
    if payload.alerts.len() > MAX_ALERTS {
        return Err(WebhookError::TooMany(payload.alerts.len()));
    }
    Ok(payload)
}

/// What a payload means for the engine: reports to send, and how many alerts
/// were ignored (unknown service or alert name).
pub fn alert_reports(
    cfg: &AlertmanagerConfig,
    payload: &WebhookPayload,
) -> (Vec<ProbeReport>, usize) {
    let (reports, ignored) = prioritized_reports(cfg, payload);
    (reports.into_iter().map(|(r, _)| r).collect(), ignored)
}

/// [`alert_reports`] with each report's [`Priority`] (from its labels).
pub fn prioritized_reports(
    cfg: &AlertmanagerConfig,
    payload: &WebhookPayload,
) -> (Vec<(ProbeReport, Priority)>, usize) {
    let mut reports = Vec::new();
    let mut ignored = 0;
    for a in &payload.alerts {
        let (Some(name), Some(service)) =
            (a.labels.get("alertname"), a.labels.get(&cfg.service_label))
        else {
            ignored += 1;
            continue;
        };
        if !cfg.accepts(name, service) {
            ignored += 1;
            continue;
        }
        let summary = a
            .annotations
            .get("summary")
            .or_else(|| a.annotations.get("description"))
            .map(|s| format!(": {}", truncate(s, 200)))
            .unwrap_or_default();
        let firing = a.status == AlertStatus::Firing;
        let priority = Priority::of(&a.labels);
        reports.push((
            ProbeReport {
                service: service.clone(),
                probe: name.clone(),
                ok: !firing,
                latency: Duration::ZERO,
                failure: firing.then_some(ProbeFailure::Other),
                detail: format!(
                    "alert {name} {}{summary}",
                    if firing { "firing" } else { "resolved" }
                ),
            },
            priority,
        ));
    }
    (reports, ignored)
}

fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

struct AmState<T> {
    cfg: Arc<AlertmanagerConfig>,
    tx: mpsc::Sender<T>,
    hooks: SignalHooks,
}

impl<T> Clone for AmState<T> {
    fn clone(&self) -> Self {
        AmState {
            cfg: Arc::clone(&self.cfg),
            tx: self.tx.clone(),
            hooks: self.hooks.clone(),
        }
    }
}

/// Answer of a successful notification.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookAnswer {
    pub accepted: usize,
    pub ignored: usize,
    /// Low-priority alerts dropped because the engine's queue was more than
    /// half full (see [`crate::shed`]).
    #[serde(default)]
    pub shed: usize,
}

/// The API error (from medic-api's one code table) for a rejected body.
fn webhook_error(e: &WebhookError) -> ApiError {
    let code = match e {
        WebhookError::Invalid { field, .. } if field == "body" => ErrorCode::BadRequest,
        WebhookError::TooMany(_) => ErrorCode::PayloadTooLarge,
        _ => ErrorCode::InvalidField,
    };
    ApiError::new(code, e.to_string()).with_field(e.field())
}

/// The API error for a body that could not be read (over [`MAX_BODY`], or cut off).
fn body_error(e: &BytesRejection) -> ApiError {
    let err = if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::new(
            ErrorCode::PayloadTooLarge,
            format!("body exceeds {MAX_BODY} bytes"),
        )
    } else {
        ApiError::bad_request(format!("could not read body: {}", e.body_text()))
    };
    err.with_field("body")
}

async fn receive<T>(State(st): State<AmState<T>>, body: Result<Bytes, BytesRejection>) -> Response
where
    T: From<ProbeReport> + Send + 'static,
{
    let parsed = match &body {
        Ok(bytes) => parse_webhook(bytes).map_err(|e| (webhook_error(&e), e.to_string())),
        Err(e) => Err((body_error(e), e.body_text())),
    };
    let payload = match parsed {
        Ok(p) => p,
        Err((err, why)) => {
            st.hooks.metrics.inc(&st.hooks.metrics.webhook_rejected);
            tracing::warn!(error = %why, "rejected Alertmanager webhook");
            return err.into_response();
        }
    };
    let (reports, ignored) = prioritized_reports(&st.cfg, &payload);
    let m = &st.hooks.metrics;
    m.add(&m.alerts_received, payload.alerts.len() as u64);
    m.add(&m.alerts_ignored, ignored as u64);
    let mut accepted = 0;
    let mut shed = 0;
    for (r, priority) in reports {
        let p = priority as usize;
        m.inc(&m.alerts_by_priority[p]);
        if !admit(priority, st.tx.capacity(), st.tx.max_capacity()) {
            shed += 1;
            m.inc(&m.alerts_shed);
            continue;
        }
        accepted += 1;
        let ok = r.ok;
        match tokio::time::timeout(QUEUE_WAIT, st.tx.send(T::from(r))).await {
            Ok(Ok(())) => {
                m.count_report(ok);
                m.inc(&m.alerts_admitted[p]);
            }
            Ok(Err(_)) | Err(_) => {
                return ApiError::new(
                    ErrorCode::ControlUnavailable,
                    "the engine is not accepting reports",
                )
                .into_response()
            }
        }
    }
    if shed > 0 {
        tracing::debug!(
            shed,
            accepted,
            "low-priority alerts shed: the engine queue is busy"
        );
    }
    (
        StatusCode::OK,
        Json(WebhookAnswer {
            accepted,
            ignored,
            shed,
        }),
    )
        .into_response()
}

/// The receiver's router (`POST /api/v1/alerts/alertmanager`): merge it into
/// the API router. Every error it answers is a JSON error of medic-api's code
/// table (a body over [`MAX_BODY`] is `413 E0413`, a wrong method `405 E0405`);
/// it has no fallback, so the API router's (`404 E0401`) stays in charge. Reports are sent on `tx` as `T::from(report)`, so the
/// daemon can pass its own input channel (`impl From<ProbeReport> for Msg`)
/// or a plain `mpsc::Sender<ProbeReport>`.
pub fn alertmanager_router<T>(
    cfg: &medic_config::SignalsConfig,
    tx: mpsc::Sender<T>,
    hooks: &SignalHooks,
) -> Router
where
    T: From<ProbeReport> + Send + 'static,
{
    let receiver = Router::new()
        .route(WEBHOOK_PATH, post(receive::<T>))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY))
        // Bounded memory under a flood: further requests wait here, before
        // their bodies are read.
        .route_layer(tower::limit::ConcurrencyLimitLayer::new(
            MAX_CONCURRENT_WEBHOOKS,
        ));
    // Wrong methods and any error no handler wrote are JSON errors too.
    medic_api::json_errors(receiver).with_state(AmState {
        cfg: Arc::new(cfg.alertmanager.clone()),
        tx,
        hooks: hooks.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use medic_config::AlertConfig;

    pub(crate) const SAMPLE: &str = r#"{
  "version": "4",
  "groupKey": "{}:{alertname=\"FixtureSlow\"}",
  "truncatedAlerts": 0,
  "status": "firing",
  "receiver": "medic",
  "groupLabels": {"alertname": "FixtureSlow"},
  "commonLabels": {"alertname": "FixtureSlow", "service": "web"},
  "commonAnnotations": {},
  "externalURL": "http://am:9093",
  "alerts": [
    {"status": "firing", "labels": {"alertname": "FixtureSlow", "service": "web"},
     "annotations": {"summary": "p90 latency high"}, "startsAt": "2024-01-01T00:00:00Z",
     "endsAt": "0001-01-01T00:00:00Z", "generatorURL": "http://prom/graph", "fingerprint": "abc"},
    {"status": "resolved", "labels": {"alertname": "DiskFull", "service": "web"}},
    {"status": "firing", "labels": {"alertname": "FixtureSlow", "service": "db"}},
    {"status": "firing", "labels": {"alertname": "Other", "service": "web"}},
    {"status": "firing", "labels": {"service": "web"}}
  ]
}"#;

    fn cfg() -> AlertmanagerConfig {
        AlertmanagerConfig {
            service_label: "service".into(),
            alerts: vec![
                AlertConfig {
                    name: "FixtureSlow".into(),
                    services: vec!["web".into()],
                },
                AlertConfig {
                    name: "DiskFull".into(),
                    services: vec!["web".into(), "db".into()],
                },
            ],
        }
    }

    #[test]
    fn sample_payload_maps_to_reports() {
        let p = parse_webhook(SAMPLE.as_bytes()).unwrap();
        let (reports, ignored) = alert_reports(&cfg(), &p);
        assert_eq!(ignored, 3);
        assert_eq!(reports.len(), 2);
        assert!(!reports[0].ok);
        assert_eq!(reports[0].probe, "FixtureSlow");
        assert_eq!(
            reports[0].detail,
            "alert FixtureSlow firing: p90 latency high"
        );
        assert!(reports[1].ok);
        assert_eq!(reports[1].probe, "DiskFull");
    }

    #[test]
    fn errors_name_the_field() {
        let e = parse_webhook(
            b"{\"version\":\"4\",\"alerts\":[{\"status\":\"burning\",\"labels\":{}}]}",
        )
        .unwrap_err();
        assert_eq!(e.field(), "alerts[0].status");
        let e = parse_webhook(
            b"{\"version\":\"4\",\"alerts\":[{\"status\":\"firing\",\"labels\":{\"a\":1}}]}",
        )
        .unwrap_err();
        assert_eq!(e.field(), "alerts[0].labels.a");
        let e = parse_webhook(b"{\"version\":\"4\"}").unwrap_err();
        assert!(e.to_string().contains("missing field `alerts`"), "{e}");
        assert_eq!(e.field(), "alerts");
        let e =
            parse_webhook(b"{\"version\":\"4\",\"alerts\":[{\"status\":\"firing\"}]}").unwrap_err();
        assert_eq!(e.field(), "alerts[0].labels");
        let e = parse_webhook(b"{\"version\":\"3\",\"alerts\":[]}").unwrap_err();
        assert_eq!(e.field(), "version");
        let e = parse_webhook(b"not json").unwrap_err();
        assert_eq!(e.field(), "body");
        let e = parse_webhook(b"{\"version\":\"4\",\"alerts\":[]} trailing").unwrap_err();
        assert_eq!(e.field(), "body");
    }
}
