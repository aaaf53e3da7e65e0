//! `ai:`: optional AI hypotheses from an OpenAI-compatible chat endpoint
//! (issue 9). The key is never in the file: `api_key_env` names the
//! environment variable that holds it.
use std::time::Duration;

use serde::Deserialize;
use serde_saphyr::Spanned;

use crate::raw::Dur;
use crate::Validator;

/// Default timeout of one request to the endpoint.
pub const DEFAULT_AI_TIMEOUT: Duration = Duration::from_secs(5);
/// Upper bound of `ai.timeout`.
pub const MAX_AI_TIMEOUT: Duration = Duration::from_secs(60);
/// Default and upper bound of `ai.max_hypotheses`.
pub const DEFAULT_AI_HYPOTHESES: usize = 3;
pub const MAX_AI_HYPOTHESES: usize = 10;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAi {
    pub url: Spanned<String>,
    pub model: Spanned<String>,
    pub api_key_env: Option<Spanned<String>>,
    /// Refused with a message that says where the key goes instead.
    pub api_key: Option<Spanned<String>>,
    pub timeout: Option<Spanned<Dur>>,
    pub max_hypotheses: Option<Spanned<u64>>,
}

/// The `ai:` section, validated. The environment (`MEDIC_AI_URL`,
/// `MEDIC_AI_MODEL`, `MEDIC_AI_KEY`) overrides it field by field; the daemon
/// resolves both (see docs/rca.md).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AiConfig {
    /// The OpenAI-compatible base URL (`/chat/completions` is appended).
    pub url: String,
    pub model: String,
    /// The NAME of the environment variable holding the bearer key.
    pub api_key_env: Option<String>,
    /// One request's timeout (0 < timeout ≤ 60s).
    pub timeout: Duration,
    /// Most hypotheses taken from one answer (1..=10).
    pub max_hypotheses: usize,
}

impl Validator {
    pub(crate) fn ai(&mut self, raw: RawAi) -> AiConfig {
        self.url(&raw.url);
        if raw.model.value.trim().is_empty() {
            self.at(raw.model.referenced, "ai.model must not be empty");
        }
        if let Some(k) = &raw.api_key {
            self.at(
                k.referenced,
                "ai.api_key is not allowed: put the key in an environment variable and name it in ai.api_key_env",
            );
        }
        if let Some(e) = &raw.api_key_env {
            let v = &e.value;
            let ok = v.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
                && v.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !ok {
                self.at(
                    e.referenced,
                    format!("ai.api_key_env `{v}` is not an environment variable name (letters, digits, `_`)"),
                );
            }
        }
        let timeout = match raw.timeout {
            Some(t) if t.value.0.is_zero() || t.value.0 > MAX_AI_TIMEOUT => {
                self.at(
                    t.referenced,
                    "ai.timeout must be more than 0s and at most 60s",
                );
                DEFAULT_AI_TIMEOUT
            }
            Some(t) => t.value.0,
            None => DEFAULT_AI_TIMEOUT,
        };
        let max_hypotheses = match raw.max_hypotheses {
            Some(m) if m.value == 0 || m.value > MAX_AI_HYPOTHESES as u64 => {
                self.at(m.referenced, "ai.max_hypotheses must be between 1 and 10");
                DEFAULT_AI_HYPOTHESES
            }
            Some(m) => usize::try_from(m.value).unwrap_or(DEFAULT_AI_HYPOTHESES),
            None => DEFAULT_AI_HYPOTHESES,
        };
        AiConfig {
            url: raw.url.value,
            model: raw.model.value.trim().to_string(),
            api_key_env: raw.api_key_env.map(|e| e.value),
            timeout,
            max_hypotheses,
        }
    }
}
