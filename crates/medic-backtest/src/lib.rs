//! `medic backtest`: what a config would have done on recorded metrics.
//!
//! Recorded samples (CSV files in the NAB layout, or Prometheus range queries) are replayed
//! through the config's signal rules (their detectors and noisy-rule breaker, the same
//! [`medic_signal::RuleState`] the daemon runs) and a real [`medic_core::Engine`] forced to
//! dry-run, on a simulated clock. The report says, per rule: when it fired, the incidents it
//! would have opened, the governance decisions on them (what medic would have done and why),
//! and the breaker's mutes; one SVG per series marks detections and incidents.
//!
//! The replay ([`replay::replay`]) is pure; IO (files, HTTP, plots, the progress bar) is in
//! [`data`], [`plot`] and [`cli`].

#![forbid(unsafe_code)]

pub mod cli;
pub mod data;
pub mod plot;
pub mod replay;

pub use replay::{replay, Report, RuleData, RuleReport};

/// Why a backtest could not run.
#[derive(Debug, thiserror::Error)]
pub enum BacktestError {
    /// Bad arguments (unknown rule, bad time, missing option).
    #[error("{0}")]
    Usage(String),
    /// A file or directory named on the command line does not exist.
    #[error("{0}")]
    NotFound(String),
    /// Recorded data could not be read (file and line named).
    #[error("{0}")]
    Data(String),
    /// Prometheus could not be reached.
    #[error("{0}")]
    Unreachable(String),
    /// Prometheus answered with an error or an unexpected shape.
    #[error("{0}")]
    Source(String),
    /// A plot could not be drawn or written.
    #[error("plot: {0}")]
    Plot(String),
}

/// RFC 3339 (UTC, seconds) of a unix time in ms; the number itself when out of range.
#[must_use]
pub fn fmt_time(unix_ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix_ms.div_euclid(1000))
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| unix_ms.to_string())
}

/// Parses `--from`/`--to`: RFC 3339 (`2014-02-19T10:50:00Z`), a bare `YYYY-MM-DD HH:MM:SS`
/// (UTC, as in NAB files) or unix seconds. Returns unix ms.
///
/// # Errors
/// Anything else.
pub fn parse_time(s: &str) -> Result<i64, BacktestError> {
    use time::format_description::well_known::Rfc3339;
    if let Ok(secs) = s.parse::<i64>() {
        return Ok(secs.saturating_mul(1000));
    }
    if let Ok(t) = time::OffsetDateTime::parse(s, &Rfc3339) {
        return i64::try_from(t.unix_timestamp_nanos() / 1_000_000)
            .map_err(|_| BacktestError::Usage(format!("time {s:?} is out of range")));
    }
    if let Ok(us) = medic_nab::time::parse_micros(s) {
        return Ok(us.div_euclid(1000));
    }
    Err(BacktestError::Usage(format!(
        "time {s:?}: expected RFC 3339 (2014-02-19T10:50:00Z), `YYYY-MM-DD HH:MM:SS` (UTC) or unix seconds"
    )))
}
