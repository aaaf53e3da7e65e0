//! Optional AI hypotheses (issue 9): an OpenAI-compatible chat endpoint is
//! asked for extra root-cause hypotheses from a diagnosis's evidence. They are
//! marked `ai_suggested`, capped below the approval band, only ever appended
//! after medic's own hypotheses, and timeouts or errors are harmless (no
//! hypotheses). medic works fully without it.
use std::time::Duration;

use medic_core::{DiagnosisReport, Hypothesis};

/// Where to ask, resolved from the `ai:` section and the environment
/// (`MEDIC_AI_URL`, `MEDIC_AI_MODEL`, `MEDIC_AI_KEY` override the file).
#[derive(Clone, PartialEq, Eq)]
pub struct AiEndpoint {
    pub url: String,
    pub model: String,
    pub key: Option<String>,
    pub timeout: Duration,
    pub max_hypotheses: usize,
}

/// Never prints the key.
impl std::fmt::Debug for AiEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AiEndpoint")
            .field("url", &self.url)
            .field("model", &self.model)
            .field("key", &self.key.as_ref().map(|_| "<set>"))
            .field("timeout", &self.timeout)
            .field("max_hypotheses", &self.max_hypotheses)
            .finish()
    }
}

impl AiEndpoint {
    /// The file's `ai:` section with the environment (read through `env`)
    /// overriding it field by field: `MEDIC_AI_URL` the URL, `MEDIC_AI_MODEL`
    /// the model, `MEDIC_AI_KEY` the key otherwise read from the variable
    /// `api_key_env` names. `None` unless both a URL and a model result.
    pub fn resolve(
        file: Option<&medic_config::AiConfig>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Option<AiEndpoint> {
        let get = |k: &str| env(k).filter(|v| !v.trim().is_empty());
        let key = get("MEDIC_AI_KEY")
            .or_else(|| file.and_then(|f| f.api_key_env.as_deref()).and_then(&get));
        Some(AiEndpoint {
            url: get("MEDIC_AI_URL").or_else(|| file.map(|f| f.url.clone()))?,
            model: get("MEDIC_AI_MODEL").or_else(|| file.map(|f| f.model.clone()))?,
            key,
            timeout: file.map_or(DEFAULT_TIMEOUT, |f| f.timeout),
            max_hypotheses: file.map_or(DEFAULT_MAX, |f| f.max_hypotheses),
        })
    }
}

const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
const DEFAULT_MAX: usize = 3;

/// Each hypothesis's evidence text sent is cut to this many characters.
pub const MAX_EVIDENCE_CHARS: usize = 500;
/// The whole user message sent is cut to this many characters.
pub const MAX_PROMPT_CHARS: usize = 8192;
/// A larger answer is refused without reading more of it.
pub const MAX_RESPONSE_BYTES: usize = 64 * 1024;

/// Why an endpoint gave no hypotheses (logged by the daemon; harmless).
#[derive(Debug, thiserror::Error)]
pub enum AiError {
    #[error("request failed: {0}")]
    Request(#[from] reqwest::Error),
    #[error("HTTP status {0}")]
    Status(u16),
    #[error("answer larger than {MAX_RESPONSE_BYTES} bytes")]
    TooLarge,
    #[error("answer is not a chat completion with a JSON hypotheses list: {0}")]
    Malformed(&'static str),
}

/// At most one request in flight. A diagnosis offered while one is waits
/// (only the newest) until the answer comes back; a request whose answer
/// never comes back stops counting after `give_up`.
#[derive(Debug, Default)]
pub struct InFlight {
    started: Option<std::time::Instant>,
    pending: Option<DiagnosisReport>,
}

impl InFlight {
    /// A new diagnosis at `now`: returns it when it may be sent now (the
    /// caller sends it), or keeps it as the one waiting. A diagnosis without
    /// hypotheses is never sent and drops the one waiting.
    pub fn offer(
        &mut self,
        d: &DiagnosisReport,
        now: std::time::Instant,
        give_up: Duration,
    ) -> Option<DiagnosisReport> {
        if d.hypotheses.is_empty() {
            self.pending = None;
            return None;
        }
        if self
            .started
            .is_some_and(|t| now.saturating_duration_since(t) < give_up)
        {
            self.pending = Some(d.clone());
            return None;
        }
        self.started = Some(now);
        Some(d.clone())
    }

    /// The request in flight was answered at `now`: returns the diagnosis
    /// that waited, to be sent now (the caller sends it).
    pub fn answered(&mut self, now: std::time::Instant) -> Option<DiagnosisReport> {
        self.started = None;
        let next = self.pending.take()?;
        self.started = Some(now);
        Some(next)
    }
}

/// The confidence cap: below `approve` (the approval band's lower edge).
pub fn cap(approve: u8) -> u8 {
    approve.saturating_sub(1).min(40)
}

fn truncate(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
}

/// The chat request's body: the model and the diagnosis's evidence, bounded
/// by [`MAX_EVIDENCE_CHARS`] per hypothesis and [`MAX_PROMPT_CHARS`] overall.
pub fn request_body(
    cfg: &AiEndpoint,
    report: &DiagnosisReport,
    services: &[String],
) -> serde_json::Value {
    let evidence: Vec<String> = report
        .hypotheses
        .iter()
        .map(|h| {
            format!(
                "{}: {} {} (confidence {}): {}",
                h.service,
                h.signal,
                h.pattern,
                h.confidence,
                truncate(&h.evidence_text, MAX_EVIDENCE_CHARS)
            )
        })
        .collect();
    let user = format!(
        "Services: {}\nEvidence:\n{}",
        services.join(", "),
        evidence.join("\n")
    );
    serde_json::json!({
        "model": cfg.model,
        "messages": [
            {"role": "system", "content": "You help find the root cause of an incident across services. Answer only with JSON: {\"hypotheses\": [{\"service\": NAME, \"reason\": TEXT}]}, services from the list given."},
            {"role": "user", "content": truncate(&user, MAX_PROMPT_CHARS)},
        ],
    })
}

/// Reads at most [`MAX_RESPONSE_BYTES`] of a body.
async fn read_capped(mut resp: reqwest::Response) -> Result<Vec<u8>, AiError> {
    if resp
        .content_length()
        .is_some_and(|n| n > MAX_RESPONSE_BYTES as u64)
    {
        return Err(AiError::TooLarge);
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await? {
        if body.len() + chunk.len() > MAX_RESPONSE_BYTES {
            return Err(AiError::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Asks the endpoint; returns `ai_suggested` hypotheses for known services
/// only, at most `max_hypotheses`, confidence capped by [`cap`]. Errors and
/// timeouts give no hypotheses (the caller logs them).
pub async fn suggest(
    http: &reqwest::Client,
    cfg: &AiEndpoint,
    report: &DiagnosisReport,
    services: &[String],
    approve: u8,
) -> Result<Vec<Hypothesis>, AiError> {
    let url = format!("{}/chat/completions", cfg.url.trim_end_matches('/'));
    let mut req = http
        .post(url)
        .timeout(cfg.timeout)
        .json(&request_body(cfg, report, services));
    if let Some(k) = &cfg.key {
        req = req.bearer_auth(k);
    }
    let resp = req.send().await?;
    if !resp.status().is_success() {
        return Err(AiError::Status(resp.status().as_u16()));
    }
    let body = read_capped(resp).await?;
    let v: serde_json::Value =
        serde_json::from_slice(&body).map_err(|_| AiError::Malformed("body is not JSON"))?;
    let content = v["choices"][0]["message"]["content"]
        .as_str()
        .ok_or(AiError::Malformed("no choices[0].message.content"))?;
    let answer: serde_json::Value = serde_json::from_str(content.trim())
        .map_err(|_| AiError::Malformed("content is not JSON"))?;
    let confidence = cap(approve);
    Ok(answer["hypotheses"]
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
                    truncate(h["reason"].as_str().unwrap_or(""), 200)
                ),
            })
        })
        .take(cfg.max_hypotheses)
        .collect())
}

/// Appends suggestions after medic's own hypotheses (never first, bounded),
/// one per service: a service medic ranks already may get one too (its
/// reason is the suggestion's news), a service the endpoint names twice once.
pub fn merge(report: &mut DiagnosisReport, extra: Vec<Hypothesis>) {
    if report.hypotheses.is_empty() {
        return;
    }
    for h in extra {
        if report.hypotheses.len() >= medic_core::MAX_HYPOTHESES {
            break;
        }
        if !report
            .hypotheses
            .iter()
            .any(|x| x.service == h.service && x.pattern == h.pattern)
        {
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

    fn cfg(url: String) -> AiEndpoint {
        AiEndpoint {
            url,
            model: "m1".into(),
            key: Some("k".into()),
            timeout: Duration::from_millis(500),
            max_hypotheses: 3,
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
        let got = suggest(&http, &cfg(url), &report(), &services(), 50)
            .await
            .unwrap();
        assert_eq!(got.len(), 1, "{got:?}");
        assert_eq!(got[0].service, "api");
        assert_eq!(got[0].pattern, "ai_suggested");
        assert!(got[0].confidence < 50);
        assert!(got[0].evidence_text.contains("pool exhausted"));
        let mut r = report();
        merge(&mut r, got.clone());
        assert_eq!(r.hypotheses[0].service, "db", "never first");
        assert_eq!(r.hypotheses.len(), 2);
        // One per service; a service medic ranks may get one (after).
        let mut db = got[0].clone();
        db.service = "db".into();
        let mut r = report();
        merge(&mut r, vec![got[0].clone(), got[0].clone(), db]);
        let ranked: Vec<(&str, &str)> = r
            .hypotheses
            .iter()
            .map(|h| (h.service.as_str(), h.pattern.as_str()))
            .collect();
        assert_eq!(
            ranked,
            [
                ("db", "dependency_slow"),
                ("api", "ai_suggested"),
                ("db", "ai_suggested")
            ]
        );
    }

    #[tokio::test]
    async fn timeouts_errors_and_garbage_are_harmless() {
        let http = reqwest::Client::new();
        let slow = server(
            r#"{"hypotheses": [{"service": "api"}]}"#,
            Duration::from_secs(3),
        )
        .await;
        let e = suggest(&http, &cfg(slow), &report(), &services(), 50).await;
        assert!(
            matches!(&e, Err(AiError::Request(r)) if r.is_timeout()),
            "{e:?}"
        );
        let garbage = server("not json at all", Duration::ZERO).await;
        let e = suggest(&http, &cfg(garbage), &report(), &services(), 50).await;
        assert!(matches!(e, Err(AiError::Malformed(_))), "{e:?}");
        let closed = cfg("http://127.0.0.1:1/v1".into());
        let e = suggest(&http, &closed, &report(), &services(), 50).await;
        assert!(matches!(e, Err(AiError::Request(_))), "{e:?}");
        let mut empty = DiagnosisReport::default();
        merge(&mut empty, report().hypotheses);
        assert!(
            empty.hypotheses.is_empty(),
            "no suggestion without a diagnosis"
        );
    }

    #[test]
    fn one_request_in_flight_and_only_the_newest_diagnosis_waits() {
        let t0 = std::time::Instant::now();
        let give_up = Duration::from_secs(10);
        let at = |s: u64| t0 + Duration::from_secs(s);
        let mut f = InFlight::default();
        let mut d1 = report();
        d1.hypotheses[0].confidence = 1;
        let mut d2 = report();
        d2.hypotheses[0].confidence = 2;
        let mut d3 = report();
        d3.hypotheses[0].confidence = 3;
        assert_eq!(f.offer(&d1, at(0), give_up), Some(d1.clone()));
        // In flight: later ones wait, the newest replaces the older.
        assert_eq!(f.offer(&d2, at(1), give_up), None);
        assert_eq!(f.offer(&d3, at(2), give_up), None);
        assert_eq!(f.answered(at(3)), Some(d3.clone()));
        // d3 is in flight now.
        assert_eq!(f.offer(&d1, at(4), give_up), None);
        // An empty diagnosis drops the waiting one.
        assert_eq!(f.offer(&DiagnosisReport::default(), at(4), give_up), None);
        assert_eq!(f.answered(at(5)), None);
        assert_eq!(f.offer(&d2, at(6), give_up), Some(d2.clone()));
        // Never answered: after `give_up` another may go.
        assert_eq!(f.offer(&d1, at(15), give_up), None);
        assert_eq!(f.offer(&d3, at(16), give_up), Some(d3));
    }

    #[test]
    fn the_environment_overrides_the_file_field_by_field() {
        let file = medic_config::AiConfig {
            url: "http://file/v1".into(),
            model: "file-model".into(),
            api_key_env: Some("LLM_KEY".into()),
            timeout: Duration::from_secs(2),
            max_hypotheses: 5,
        };
        let env = |vars: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                vars.iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| v.to_string())
            }
        };
        let e = AiEndpoint::resolve(Some(&file), env(&[("LLM_KEY", "sk-file")])).unwrap();
        assert_eq!(
            (e.url.as_str(), e.model.as_str(), e.key.as_deref()),
            ("http://file/v1", "file-model", Some("sk-file"))
        );
        assert_eq!((e.timeout, e.max_hypotheses), (Duration::from_secs(2), 5));
        assert!(!format!("{e:?}").contains("sk-file"), "Debug hides the key");
        let e = AiEndpoint::resolve(
            Some(&file),
            env(&[
                ("LLM_KEY", "sk-file"),
                ("MEDIC_AI_URL", "http://env/v1"),
                ("MEDIC_AI_KEY", "sk-env"),
            ]),
        )
        .unwrap();
        assert_eq!(
            (e.url.as_str(), e.model.as_str(), e.key.as_deref()),
            ("http://env/v1", "file-model", Some("sk-env"))
        );
        assert!(AiEndpoint::resolve(None, env(&[("MEDIC_AI_URL", "http://env/v1")])).is_none());
        let e = AiEndpoint::resolve(
            None,
            env(&[("MEDIC_AI_URL", "http://env/v1"), ("MEDIC_AI_MODEL", "m")]),
        )
        .unwrap();
        assert_eq!(
            (e.key, e.timeout, e.max_hypotheses),
            (None, DEFAULT_TIMEOUT, DEFAULT_MAX)
        );
    }

    #[test]
    fn the_request_is_bounded() {
        let mut r = report();
        r.hypotheses[0].evidence_text = "x".repeat(10_000);
        r.hypotheses[0].service = "y".repeat(20_000);
        let body = request_body(&cfg("http://x/v1".into()), &r, &services());
        let user = body["messages"][1]["content"].as_str().unwrap();
        assert_eq!(user.chars().count(), MAX_PROMPT_CHARS);
        let mut r = report();
        r.hypotheses[0].evidence_text = "x".repeat(10_000);
        let body = request_body(&cfg("http://x/v1".into()), &r, &services());
        let user = body["messages"][1]["content"].as_str().unwrap();
        assert!(user.contains(&"x".repeat(MAX_EVIDENCE_CHARS)));
        assert!(
            !user.contains(&"x".repeat(MAX_EVIDENCE_CHARS + 1)),
            "{}",
            user.len()
        );
        assert_eq!(body["model"], "m1");
    }

    #[tokio::test]
    async fn a_too_large_answer_is_refused() {
        // Valid JSON, but padded past the cap: refused, not parsed.
        let pad = " ".repeat(MAX_RESPONSE_BYTES);
        let big = format!(
            r#"{{"choices": [{{"message": {{"content": "{{\"hypotheses\": [{{\"service\": \"api\"}}]}}"}}}}]{pad}}}"#
        );
        let app = Router::new().route("/v1/chat/completions", post(move || async move { big }));
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(l, app).await });
        let http = reqwest::Client::new();
        let e = suggest(
            &http,
            &cfg(format!("http://{addr}/v1")),
            &report(),
            &services(),
            50,
        )
        .await;
        assert!(matches!(e, Err(AiError::TooLarge)), "{e:?}");
    }
}
