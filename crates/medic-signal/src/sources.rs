//! Source adapters (Prometheus queries, scrapes, log tails) and the task that
//! polls one source and evaluates its rules.
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use medic_config::{Selector, SourceConfig, SourceKind};
use medic_core::ProbeReport;
use serde::Deserialize;
use tokio::sync::{mpsc, watch};

use crate::expo;
use crate::logtail::Tailer;
use crate::rule::{Now, Observation, RuleState};
use crate::SignalHooks;

/// Largest HTTP body read from a Prometheus server or scrape target.
pub const MAX_HTTP_BODY: usize = 16 << 20;

/// Why one poll of a source produced no data.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SourceError {
    #[error("request failed: {0}")]
    Http(String),
    #[error("HTTP status {0}")]
    Status(u16),
    #[error("response larger than {MAX_HTTP_BODY} bytes")]
    TooLarge,
    #[error("cannot parse response: {0}")]
    Parse(String),
    #[error("prometheus error ({kind}): {message}")]
    Prometheus { kind: String, message: String },
    #[error("log: {0}")]
    Io(String),
}

/// Wall and monotonic time since the runtime started.
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    start: Instant,
}

impl Clock {
    pub fn new() -> Clock {
        Clock {
            start: Instant::now(),
        }
    }

    pub fn now(&self) -> Now {
        let unix_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
            .unwrap_or(0);
        Now {
            mono_ms: u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX),
            unix_ms,
        }
    }
}

impl Default for Clock {
    fn default() -> Self {
        Clock::new()
    }
}

// === Prometheus HTTP API ===

#[derive(Deserialize)]
struct PromResponse {
    status: String,
    #[serde(default)]
    data: Option<PromData>,
    #[serde(default, rename = "errorType")]
    error_type: Option<String>,
    #[serde(default)]
    error: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PromData {
    result_type: String,
    result: serde_json::Value,
}

#[derive(Deserialize)]
struct PromVectorItem {
    #[serde(default)]
    metric: std::collections::BTreeMap<String, String>,
    value: (serde_json::Value, String),
}

/// Turn a `GET /api/v1/query` response into one observation per series.
pub fn parse_query_response(body: &[u8]) -> Result<Vec<Observation>, SourceError> {
    let r: PromResponse =
        serde_json::from_slice(body).map_err(|e| SourceError::Parse(e.to_string()))?;
    if r.status != "success" {
        return Err(SourceError::Prometheus {
            kind: r.error_type.unwrap_or_else(|| "unknown".into()),
            message: r.error.unwrap_or_default(),
        });
    }
    let Some(data) = r.data else {
        return Err(SourceError::Parse("missing `data`".into()));
    };
    let value = |s: &str| {
        expo::parse_value(s)
            .ok_or_else(|| SourceError::Parse(format!("invalid sample value `{s}`")))
    };
    match data.result_type.as_str() {
        "vector" => {
            let items: Vec<PromVectorItem> = serde_json::from_value(data.result)
                .map_err(|e| SourceError::Parse(e.to_string()))?;
            items
                .into_iter()
                .map(|it| {
                    let mut metric = it.metric;
                    let name = metric.remove("__name__").unwrap_or_default();
                    let labels: Vec<(String, String)> = metric.into_iter().collect();
                    Ok(Observation {
                        series: expo::series_key(&name, &labels),
                        value: value(&it.value.1)?,
                    })
                })
                .collect()
        }
        "scalar" => {
            let (_, v): (serde_json::Value, String) = serde_json::from_value(data.result)
                .map_err(|e| SourceError::Parse(e.to_string()))?;
            Ok(vec![Observation {
                series: "scalar".into(),
                value: value(&v)?,
            }])
        }
        other => Err(SourceError::Parse(format!(
            "result type `{other}` is not supported (use an instant vector or scalar query)"
        ))),
    }
}

/// GET `url` and read at most [`MAX_HTTP_BODY`] bytes. Non-2xx answers are
/// errors, except those in `error_bodies` (Prometheus explains query errors
/// in a JSON body with 400/422/503).
async fn get_bounded(
    http: &reqwest::Client,
    url: reqwest::Url,
    timeout: Duration,
    error_bodies: &[u16],
) -> Result<Vec<u8>, SourceError> {
    let fut = async {
        let mut resp = http
            .get(url)
            .send()
            .await
            .map_err(|e| SourceError::Http(e.to_string()))?;
        let status = resp.status();
        let mut body = Vec::new();
        while let Some(chunk) = resp
            .chunk()
            .await
            .map_err(|e| SourceError::Http(e.to_string()))?
        {
            if body.len() + chunk.len() > MAX_HTTP_BODY {
                return Err(SourceError::TooLarge);
            }
            body.extend_from_slice(&chunk);
        }
        if !status.is_success() && !error_bodies.contains(&status.as_u16()) {
            return Err(SourceError::Status(status.as_u16()));
        }
        Ok(body)
    };
    tokio::time::timeout(timeout, fut)
        .await
        .map_err(|_| SourceError::Http(format!("timed out after {}ms", timeout.as_millis())))?
}

/// Run one instant query.
pub async fn prometheus_query(
    http: &reqwest::Client,
    base: &str,
    query: &str,
    timeout: Duration,
) -> Result<Vec<Observation>, SourceError> {
    let url = reqwest::Url::parse_with_params(&format!("{base}/api/v1/query"), &[("query", query)])
        .map_err(|e| SourceError::Http(format!("bad URL: {e}")))?;
    let body = get_bounded(http, url, timeout, &[400, 422, 503]).await?;
    parse_query_response(&body)
}

/// Observations of a scrape rule: samples named `metric` carrying every label in `labels`.
pub fn select_metric(
    exp: &expo::Exposition,
    metric: &str,
    labels: &std::collections::BTreeMap<String, String>,
) -> Vec<Observation> {
    exp.samples
        .iter()
        .filter(|s| s.name == metric && labels.iter().all(|(k, v)| s.label(k) == Some(v)))
        .map(|s| Observation {
            series: expo::series_key(&s.name, &s.labels),
            value: s.value,
        })
        .collect()
}

/// Scrape and parse an exposition endpoint.
pub async fn scrape(
    http: &reqwest::Client,
    url: &str,
    timeout: Duration,
) -> Result<expo::Exposition, SourceError> {
    let url = reqwest::Url::parse(url).map_err(|e| SourceError::Http(format!("bad URL: {e}")))?;
    let body = get_bounded(http, url, timeout, &[]).await?;
    let text = String::from_utf8_lossy(&body);
    expo::parse(&text).map_err(|e| SourceError::Parse(e.to_string()))
}

// === the source task ===

struct LogRule {
    state: RuleState,
    re: Option<regex::Regex>,
}

/// Poll `src` every interval, evaluate `rules` (all on this source) and send
/// their reports until `shutdown` turns true (or its sender is dropped).
pub(crate) async fn run_source<T>(
    src: SourceConfig,
    rules: Vec<RuleState>,
    http: Option<reqwest::Client>,
    tx: mpsc::Sender<T>,
    hooks: SignalHooks,
    mut shutdown: watch::Receiver<bool>,
    clock: Clock,
) where
    T: From<ProbeReport> + Send + 'static,
{
    let mut rules: Vec<LogRule> = rules
        .into_iter()
        .map(|state| {
            let re = match &state.config().selector {
                Selector::Match(p) => match regex::RegexBuilder::new(p).size_limit(1 << 20).build() {
                    Ok(r) => Some(r),
                    Err(e) => {
                        tracing::error!(rule = %state.config().name, error = %e, "invalid log pattern; rule disabled");
                        None
                    }
                },
                _ => None,
            };
            LogRule { state, re }
        })
        .collect();
    let mut tailer = match &src.kind {
        SourceKind::Log { path, from_start } => Some(Tailer::new(path.clone(), *from_start)),
        _ => None,
    };
    let mut ticker = tokio::time::interval(src.interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let metrics = Arc::clone(&hooks.metrics);
    loop {
        if *shutdown.borrow() {
            break;
        }
        tokio::select! {
            biased;
            r = shutdown.changed() => {
                if r.is_err() || *shutdown.borrow() {
                    break;
                }
                continue;
            }
            _ = ticker.tick() => {}
        }
        // Collect observations per rule: None = the source failed this time.
        let mut per_rule: Vec<Option<Vec<Observation>>> = Vec::with_capacity(rules.len());
        match (&src.kind, &http) {
            (SourceKind::Prometheus { url }, Some(http)) => {
                // Detectors are Send but not Sync: hold no borrow of a rule across an await.
                let queries: Vec<(String, Option<String>)> = rules
                    .iter()
                    .map(|r| {
                        let c = r.state.config();
                        let q = match &c.selector {
                            Selector::Query(q) => Some(q.clone()),
                            _ => None,
                        };
                        (c.name.clone(), q)
                    })
                    .collect();
                for (rule, q) in queries {
                    let Some(q) = q else {
                        per_rule.push(None);
                        continue;
                    };
                    match prometheus_query(http, url, &q, src.timeout).await {
                        Ok(obs) => per_rule.push(Some(obs)),
                        Err(e) => {
                            metrics.inc(&metrics.source_errors);
                            tracing::warn!(source = %src.name, rule = %rule, error = %e, "prometheus query failed");
                            per_rule.push(None);
                        }
                    }
                }
            }
            (SourceKind::Scrape { url }, Some(http)) => {
                match scrape(http, url, src.timeout).await {
                    Ok(exp) => {
                        for r in &rules {
                            per_rule.push(match &r.state.config().selector {
                                Selector::Metric { name, labels } => {
                                    Some(select_metric(&exp, name, labels))
                                }
                                _ => None,
                            });
                        }
                    }
                    Err(e) => {
                        metrics.inc(&metrics.source_errors);
                        tracing::warn!(source = %src.name, error = %e, "scrape failed");
                        per_rule.extend(rules.iter().map(|_| None));
                    }
                }
            }
            (SourceKind::Prometheus { .. } | SourceKind::Scrape { .. }, None) => return,
            (SourceKind::Log { .. }, _) => {
                let polled = match tailer.take() {
                    Some(mut t) => match tokio::task::spawn_blocking(move || {
                        let r = t.poll();
                        (t, r)
                    })
                    .await
                    {
                        Ok((t, r)) => {
                            tailer = Some(t);
                            r.map_err(|e| SourceError::Io(e.to_string()))
                        }
                        Err(e) => Err(SourceError::Io(e.to_string())),
                    },
                    None => Err(SourceError::Io("log tailer lost".into())),
                };
                match polled {
                    Ok(lines) => {
                        for r in &rules {
                            per_rule.push(r.re.as_ref().map(|re| {
                                let n = lines.iter().filter(|l| re.is_match(l)).count();
                                vec![Observation {
                                    series: "matches".into(),
                                    value: n as f64,
                                }]
                            }));
                        }
                    }
                    Err(e) => {
                        metrics.inc(&metrics.source_errors);
                        tracing::warn!(source = %src.name, error = %e, "log tail failed");
                        if tailer.is_none() {
                            if let SourceKind::Log { path, from_start } = &src.kind {
                                tailer = Some(Tailer::new(path.clone(), *from_start));
                            }
                        }
                        per_rule.extend(rules.iter().map(|_| None));
                    }
                }
            }
        }
        let now = clock.now();
        for (r, obs) in rules.iter_mut().zip(per_rule) {
            let Some(obs) = obs else { continue };
            metrics.add(&metrics.samples, obs.len() as u64);
            let out = r.state.evaluate(now, &obs);
            if let Some(value) = out.sample {
                let c = r.state.config();
                hooks.sample(crate::SignalSample {
                    service: c.service.clone(),
                    rule: c.signal_kind().to_string(),
                    value,
                    direction: r.state.direction(),
                });
            }
            for ev in out.events {
                hooks.emit(ev);
            }
            if let Some(report) = out.report {
                let ok = report.ok;
                tokio::select! {
                    biased;
                    _ = shutdown.wait_for(|s| *s) => return,
                    sent = tx.send(T::from(report)) => {
                        if sent.is_err() {
                            return;
                        }
                        metrics.count_report(ok);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vector_and_scalar_responses() {
        let body = br#"{"status":"success","data":{"resultType":"vector","result":[
            {"metric":{"__name__":"up","job":"fixture","instance":"a"},"value":[1700000000.5,"1"]},
            {"metric":{"job":"x"},"value":[1700000000.5,"NaN"]}]}}"#;
        let obs = parse_query_response(body).unwrap();
        assert_eq!(obs.len(), 2);
        assert_eq!(obs[0].series, "up{instance=\"a\",job=\"fixture\"}");
        assert_eq!(obs[0].value, 1.0);
        assert_eq!(obs[1].series, "{job=\"x\"}");
        assert!(obs[1].value.is_nan());
        let s = parse_query_response(
            br#"{"status":"success","data":{"resultType":"scalar","result":[1,"2.5"]}}"#,
        )
        .unwrap();
        assert_eq!(s[0].value, 2.5);
        let e = parse_query_response(
            br#"{"status":"error","errorType":"bad_data","error":"parse error"}"#,
        )
        .unwrap_err();
        assert_eq!(e.to_string(), "prometheus error (bad_data): parse error");
        assert!(parse_query_response(b"<html>").is_err());
        assert!(parse_query_response(
            br#"{"status":"success","data":{"resultType":"matrix","result":[]}}"#
        )
        .is_err());
    }

    #[test]
    fn metric_selection_by_labels() {
        let exp = expo::parse("q{name=\"jobs\"} 81\nq{name=\"mail\"} 2\nother 1\n").unwrap();
        let mut want = std::collections::BTreeMap::new();
        want.insert("name".to_string(), "jobs".to_string());
        let obs = select_metric(&exp, "q", &want);
        assert_eq!(obs.len(), 1);
        assert_eq!(obs[0].value, 81.0);
        assert_eq!(select_metric(&exp, "q", &Default::default()).len(), 2);
    }
}
