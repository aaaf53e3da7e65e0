//! `otlp:`: incident traces exported over OTLP/HTTP (issue 12).
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use serde_saphyr::Spanned;

use crate::raw::Dur;
use crate::Validator;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawOtlp {
    pub endpoints: Spanned<Vec<Spanned<String>>>,
    pub timeout: Option<Dur>,
    pub buffer_dir: Option<String>,
    pub buffer_max_bytes: Option<Spanned<u64>>,
    pub flush_interval: Option<Dur>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OtlpConfig {
    /// Collector base URLs, primary first (`/v1/traces` is appended).
    pub endpoints: Vec<String>,
    pub timeout: Duration,
    /// Relative paths are relative to the database's directory.
    pub buffer_dir: PathBuf,
    pub buffer_max_bytes: u64,
    pub flush_interval: Duration,
}

impl Validator {
    pub(crate) fn otlp(&mut self, raw: RawOtlp) -> OtlpConfig {
        if raw.endpoints.value.is_empty() {
            self.at(raw.endpoints.referenced, "otlp.endpoints must not be empty");
        }
        for e in &raw.endpoints.value {
            self.url(e);
        }
        let buffer_max_bytes = match raw.buffer_max_bytes {
            Some(b) if b.value < 4096 => {
                self.at(b.referenced, "otlp.buffer_max_bytes must be at least 4096");
                4096
            }
            Some(b) => b.value,
            None => 64 << 20,
        };
        OtlpConfig {
            endpoints: raw.endpoints.value.into_iter().map(|e| e.value).collect(),
            timeout: raw.timeout.map_or(Duration::from_secs(5), |d| d.0),
            buffer_dir: PathBuf::from(raw.buffer_dir.unwrap_or_else(|| "otlp-buffer".into())),
            buffer_max_bytes,
            flush_interval: raw.flush_interval.map_or(Duration::from_secs(10), |d| d.0),
        }
    }
}
