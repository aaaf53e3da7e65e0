//! The CLI's client for a running medic's API.
use std::time::Duration;

use crate::codes::{CliError, Code};

/// A running medic's API at `base` (e.g. `http://127.0.0.1:9090`).
pub struct ApiClient {
    base: String,
    http: reqwest::Client,
}

impl ApiClient {
    pub fn new(base: &str) -> Self {
        ApiClient {
            base: base.trim_end_matches('/').to_string(),
            http: reqwest::Client::new(),
        }
    }

    pub async fn get(&self, path: &str) -> Result<serde_json::Value, CliError> {
        let url = format!("{}{path}", self.base);
        self.send(self.http.get(&url), &url).await
    }

    /// POST one of the API's request types as JSON. The actor is named by
    /// `MEDIC_OPERATOR` (else the login name) in the `X-Medic-Actor` header;
    /// the API, not the body, establishes who acts.
    pub async fn post<T: serde::Serialize>(
        &self,
        path: &str,
        body: &T,
    ) -> Result<serde_json::Value, CliError> {
        let url = format!("{}{path}", self.base);
        let req = self
            .http
            .post(&url)
            .header("X-Medic-Actor", operator())
            .json(body);
        self.send(req, &url).await
    }

    /// Send; a transport error is `E0004 unreachable`, an API error `E0005`
    /// with the API's own code and message.
    async fn send(
        &self,
        req: reqwest::RequestBuilder,
        url: &str,
    ) -> Result<serde_json::Value, CliError> {
        let resp = req
            .timeout(Duration::from_secs(10))
            .send()
            .await
            .map_err(|e| unreachable(url, &e))?;
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        let json: Option<serde_json::Value> = serde_json::from_str(&text).ok();
        if !status.is_success() {
            let detail = json
                .as_ref()
                .and_then(|v| {
                    let e = &v["error"];
                    let code = e["reason_code"]
                        .as_str()
                        .map(|c| format!(" [{c}]"))
                        .unwrap_or_default();
                    Some(format!(
                        "{} {}: {}{code}",
                        e["code"].as_str()?,
                        e["name"].as_str()?,
                        e["message"].as_str()?
                    ))
                })
                .unwrap_or(text);
            return Err(CliError::new(
                Code::Api,
                format!("{url}: HTTP {status}: {detail}"),
            ));
        }
        json.ok_or_else(|| CliError::new(Code::Api, format!("{url}: the answer is not JSON")))
    }
}

/// Who is acting: `MEDIC_OPERATOR`, else the login name.
pub fn operator() -> String {
    std::env::var("MEDIC_OPERATOR")
        .or_else(|_| std::env::var("USER"))
        .unwrap_or_else(|_| "cli".to_string())
}

fn unreachable(url: &str, e: &reqwest::Error) -> CliError {
    let mut msg = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        msg.push_str(&format!(": {s}"));
        src = s.source();
    }
    CliError::new(
        Code::Unreachable,
        format!("cannot reach medic at {url}: {msg}"),
    )
}
