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

    /// POST one of the API's request types as JSON. Who acts is the name of
    /// the token in `MEDIC_TOKEN`, established by the API, never the body.
    pub async fn post<T: serde::Serialize>(
        &self,
        path: &str,
        body: &T,
    ) -> Result<serde_json::Value, CliError> {
        let url = format!("{}{path}", self.base);
        let req = self.http.post(&url).json(body);
        self.send(req, &url).await
    }

    /// Send; a transport error is `E0004 unreachable`, an API error `E0005`
    /// with the API's own code and message.
    async fn send(
        &self,
        req: reqwest::RequestBuilder,
        url: &str,
    ) -> Result<serde_json::Value, CliError> {
        let req = match token() {
            Some(t) => req.bearer_auth(t),
            None => req,
        };
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
            let hint = if status == reqwest::StatusCode::UNAUTHORIZED && token().is_none() {
                " (set MEDIC_TOKEN to a token from `medic token create`)"
            } else {
                ""
            };
            return Err(CliError::new(
                Code::Api,
                format!("{url}: HTTP {status}: {detail}{hint}"),
            ));
        }
        json.ok_or_else(|| CliError::new(Code::Api, format!("{url}: the answer is not JSON")))
    }
}

/// The bearer token: `MEDIC_TOKEN`, when set and not empty.
fn token() -> Option<String> {
    std::env::var("MEDIC_TOKEN")
        .ok()
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty())
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
