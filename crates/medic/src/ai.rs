//! Optional AI hypotheses (issue 9): an OpenAI-compatible chat endpoint is
//! asked for extra root-cause hypotheses from a diagnosis's evidence. They are
//! marked `ai_suggested`, capped below the approval band, only ever appended
//! after medic's own hypotheses, and timeouts or errors are harmless (no
//! hypotheses). medic works fully without it.
use std::time::Duration;

use medic_core::{DiagnosisReport, Hypothesis};

/// Where to ask. From the environment: `MEDIC_AI_URL` (base URL, e.g.
/// `http://127.0.0.1:8000/v1`), `MEDIC_AI_MODEL`, `MEDIC_AI_KEY` (optional).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AiConfig {
    pub url: String,
    pub model: String,
    pub key: Option<String>,
    pub timeout: Duration,
}

impl AiConfig {
    /// `None` unless both `MEDIC_AI_URL` and `MEDIC_AI_MODEL` are set.
    pub fn from_env() -> Option<AiConfig> {
        let get = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
        Some(AiConfig {
            url: get("MEDIC_AI_URL")?,
            model: get("MEDIC_AI_MODEL")?,
            key: get("MEDIC_AI_KEY"),
            timeout: Duration::from_secs(5),
        })
    }
}

/// Most hypotheses taken from one answer.
pub const MAX_AI_HYPOTHESES: usize = 3;

/// The confidence cap: below `approve` (the approval band's lower edge).
pub fn cap(approve: u8) -> u8 {
    approve.saturating_sub(1).min(40)
}

/// Asks the endpoint; returns `ai_suggested` hypotheses for known services
/// only, at most [`MAX_AI_HYPOTHESES`], confidence capped by [`cap`]. Any
/// error or timeout gives none.
pub async fn suggest(
    http: &reqwest::Client,
    cfg: &AiConfig,
    report: &DiagnosisReport,
    services: &[String],
    approve: u8,
) -> Vec<Hypothesis> {
    let evidence: Vec<String> = report
        .hypotheses
        .iter()
        .map(|h| {
            format!(
                "{}: {} {} (confidence {}): {}",
                h.service, h.signal, h.pattern, h.confidence, h.evidence_text
            )
        })
        .collect();
    let body = serde_json::json!({
        "model": cfg.model,
        "messages": [
            {"role": "system", "content": "You help find the root cause of an incident across services. Answer only with JSON: {\"hypotheses\": [{\"service\": NAME, \"reason\": TEXT}]}, services from the list given."},
            {"role": "user", "content": format!("Services: {}\nEvidence:\n{}", services.join(", "), evidence.join("\n"))},
        ],
    });
    let url = format!("{}/chat/completions", cfg.url.trim_end_matches('/'));
    let mut req = http.post(url).timeout(cfg.timeout).json(&body);
    if let Some(k) = &cfg.key {
        req = req.bearer_auth(k);
    }
    let Ok(resp) = req.send().await else {
        return Vec::new();
    };
    if !resp.status().is_success() {
        return Vec::new();
    }
    let Ok(v) = resp.json::<serde_json::Value>().await else {
        return Vec::new();
    };
    let Some(content) = v["choices"][0]["message"]["content"].as_str() else {
        return Vec::new();
    };
    let Ok(answer) = serde_json::from_str::<serde_json::Value>(content.trim()) else {
        return Vec::new();
    };
    let confidence = cap(approve);
    answer["hypotheses"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|h| {
            let service = h["service"].as_str()?;
            services.iter().any(|s| s == service).then(|| Hypothesis {
                service: service.to_string(),
                signal: "-".into(),
                pattern: "ai_suggested".into(),
                confidence,
                prior: 0.0,
                evidence: 0.0,
                learned: 0.0,
                victims: Vec::new(),
                evidence_text: format!(
                    "suggested by {}: {}",
                    cfg.model,
                    h["reason"]
                        .as_str()
                        .unwrap_or("")
                        .chars()
                        .take(200)
                        .collect::<String>()
                ),
            })
        })
        .take(MAX_AI_HYPOTHESES)
        .collect()
}

/// Appends suggestions after medic's own hypotheses (never first, bounded).
pub fn merge(report: &mut DiagnosisReport, extra: Vec<Hypothesis>) {
    if report.hypotheses.is_empty() {
        return;
    }
    for h in extra {
        if report.hypotheses.len() >= medic_core::MAX_HYPOTHESES {
            break;
        }
        if !report.hypotheses.iter().any(|x| x.service == h.service) {
            report.hypotheses.push(h);
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    use axum::routing::post;
    use axum::{Json, Router};

    fn report() -> DiagnosisReport {
        DiagnosisReport {
            hypotheses: vec![Hypothesis {
                service: "db".into(),
                signal: "latency".into(),
                pattern: "dependency_slow".into(),
                confidence: 81,
                prior: 0.9,
                evidence: 1.0,
                learned: 0.9,
                victims: vec!["api".into()],
                evidence_text: "latency z 40".into(),
            }],
        }
    }

    /// A loopback chat endpoint answering `content`, after `delay`.
    async fn server(content: &'static str, delay: Duration) -> String {
        let app = Router::new().route(
            "/v1/chat/completions",
            post(move |Json(body): Json<serde_json::Value>| async move {
                assert_eq!(body["model"], "m1");
                tokio::time::sleep(delay).await;
                Json(serde_json::json!({"choices": [{"message": {"role": "assistant", "content": content}}]}))
            }),
        );
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(l, app).await });
        format!("http://{addr}/v1")
    }

    fn cfg(url: String) -> AiConfig {
        AiConfig {
            url,
            model: "m1".into(),
            key: Some("k".into()),
            timeout: Duration::from_millis(500),
        }
    }

    fn services() -> Vec<String> {
        vec!["web".into(), "api".into(), "db".into()]
    }

    #[tokio::test]
    async fn suggestions_are_marked_capped_and_only_for_known_services() {
        let url = server(
            r#"{"hypotheses": [{"service": "api", "reason": "pool exhausted"}, {"service": "nope", "reason": "x"}]}"#,
            Duration::ZERO,
        )
        .await;
        let http = reqwest::Client::new();
        let got = suggest(&http, &cfg(url), &report(), &services(), 50).await;
        assert_eq!(got.len(), 1, "{got:?}");
        assert_eq!(got[0].service, "api");
        assert_eq!(got[0].pattern, "ai_suggested");
        assert!(got[0].confidence < 50);
        assert!(got[0].evidence_text.contains("pool exhausted"));
        let mut r = report();
        merge(&mut r, got);
        assert_eq!(r.hypotheses[0].service, "db", "never first");
        assert_eq!(r.hypotheses.len(), 2);
    }

    #[tokio::test]
    async fn timeouts_errors_and_garbage_are_harmless() {
        let http = reqwest::Client::new();
        let slow = server(
            r#"{"hypotheses": [{"service": "api"}]}"#,
            Duration::from_secs(3),
        )
        .await;
        assert!(suggest(&http, &cfg(slow), &report(), &services(), 50)
            .await
            .is_empty());
        let garbage = server("not json at all", Duration::ZERO).await;
        assert!(suggest(&http, &cfg(garbage), &report(), &services(), 50)
            .await
            .is_empty());
        let closed = cfg("http://127.0.0.1:1/v1".into());
        assert!(suggest(&http, &closed, &report(), &services(), 50)
            .await
            .is_empty());
        let mut empty = DiagnosisReport::default();
        merge(&mut empty, report().hypotheses);
        assert!(
            empty.hypotheses.is_empty(),
            "no suggestion without a diagnosis"
        );
    }
}
