//! Where recorded samples come from: CSV files in the NAB layout, or Prometheus range
//! queries.

use std::path::Path;
use std::time::Duration;

use medic_config::{Config, RuleConfig, Selector, SourceKind};

use crate::replay::{RecordedSeries, RuleData};
use crate::BacktestError;

/// Most points asked of Prometheus per range request (its limit is 11,000).
pub const MAX_POINTS_PER_REQUEST: i64 = 10_000;
/// Most points kept per series (bounded memory): about a year of one-minute samples.
pub const MAX_POINTS_PER_SERIES: usize = 600_000;

/// The rules a backtest replays: the named ones, or every rule on a Prometheus or scrape
/// source (log rules count lines, which recorded metrics do not have).
///
/// # Errors
/// A named rule that does not exist or is a log rule.
pub fn replayable_rules<'a>(
    cfg: &'a Config,
    only: &[String],
) -> Result<Vec<&'a RuleConfig>, BacktestError> {
    let is_log = |r: &RuleConfig| matches!(r.selector, Selector::Match(_));
    for n in only {
        match cfg.signals.rules.iter().find(|r| &r.name == n) {
            None => {
                return Err(BacktestError::Usage(format!(
                    "--rule {n}: no such signal rule"
                )))
            }
            Some(r) if is_log(r) => {
                return Err(BacktestError::Usage(format!(
                    "--rule {n}: a log rule cannot be replayed from recorded metrics"
                )))
            }
            Some(_) => {}
        }
    }
    let rules: Vec<&RuleConfig> = cfg
        .signals
        .rules
        .iter()
        .filter(|r| !is_log(r) && (only.is_empty() || only.contains(&r.name)))
        .collect();
    if rules.is_empty() {
        return Err(BacktestError::Usage(
            "the config has no signal rule on a prometheus or scrape source to replay".into(),
        ));
    }
    Ok(rules)
}

/// Reads every CSV (`timestamp,value`, NAB layout) of `dir`: `dir/<category>/*.csv` (key
/// `category/name`) and `dir/*.csv` (key `name`), sorted by key.
///
/// # Errors
/// An unreadable directory, no CSV at all, or a malformed file (named with its line).
pub fn read_csv_dir(dir: &Path) -> Result<Vec<RecordedSeries>, BacktestError> {
    if !dir.is_dir() {
        return Err(BacktestError::NotFound(format!(
            "{}: not a directory",
            dir.display()
        )));
    }
    let mut files = medic_nab::list_csvs(dir).map_err(|e| BacktestError::Data(e.to_string()))?;
    let rd = std::fs::read_dir(dir)
        .map_err(|e| BacktestError::Data(format!("{}: {e}", dir.display())))?;
    for e in rd.flatten() {
        let p = e.path();
        if p.is_file() && p.extension().is_some_and(|x| x == "csv") {
            let name = p
                .file_name()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            files.push((name, p));
        }
    }
    files.sort();
    if files.is_empty() {
        return Err(BacktestError::Data(format!(
            "{}: no *.csv or <category>/*.csv files",
            dir.display()
        )));
    }
    let mut out = Vec::with_capacity(files.len());
    for (rel, path) in files {
        let key = rel.strip_suffix(".csv").unwrap_or(&rel).to_string();
        let s =
            medic_nab::read_series(&path, &key).map_err(|e| BacktestError::Data(e.to_string()))?;
        let mut points: Vec<(i64, f64)> = s
            .ts_micros
            .iter()
            .zip(&s.values)
            .map(|(&t, &v)| (t.div_euclid(1000), v))
            .collect();
        points.sort_by_key(|p| p.0);
        points.truncate(MAX_POINTS_PER_SERIES);
        out.push(RecordedSeries { key, points });
    }
    Ok(out)
}

/// The PromQL a rule's selector stands for (a scrape rule's metric and labels as a vector
/// selector).
#[must_use]
pub fn promql(rule: &RuleConfig) -> Option<String> {
    match &rule.selector {
        Selector::Query(q) => Some(q.clone()),
        Selector::Metric { name, labels } => {
            if labels.is_empty() {
                return Some(name.clone());
            }
            let l: Vec<String> = labels
                .iter()
                .map(|(k, v)| format!("{k}={}", serde_json::Value::String(v.clone())))
                .collect();
            Some(format!("{name}{{{}}}", l.join(",")))
        }
        Selector::Match(_) => None,
    }
}

/// The evaluation step of a rule: `--step` or else its source's `interval`.
#[must_use]
pub fn rule_step(cfg: &Config, rule: &RuleConfig, step: Option<Duration>) -> Duration {
    step.or_else(|| cfg.signals.source(&rule.source).map(|s| s.interval))
        .unwrap_or(medic_config::DEFAULT_SIGNAL_INTERVAL)
        .max(Duration::from_millis(100))
}

/// Whether the rule's source is a log source (not replayable).
#[must_use]
pub fn is_log_source(cfg: &Config, rule: &RuleConfig) -> bool {
    cfg.signals
        .source(&rule.source)
        .is_some_and(|s| matches!(s.kind, SourceKind::Log { .. }))
}

#[derive(serde::Deserialize)]
struct RangeResponse {
    status: String,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    data: Option<RangeData>,
}

#[derive(serde::Deserialize)]
struct RangeData {
    #[serde(rename = "resultType")]
    result_type: String,
    result: Vec<RangeItem>,
}

#[derive(serde::Deserialize)]
struct RangeItem {
    #[serde(default)]
    metric: std::collections::BTreeMap<String, String>,
    values: Vec<(f64, String)>,
}

/// Parses a `/api/v1/query_range` answer into series (merged into `into` by key).
///
/// # Errors
/// Not JSON of the expected shape, a Prometheus error, or a result that is not a matrix.
pub fn parse_range_response(
    body: &[u8],
    into: &mut Vec<RecordedSeries>,
) -> Result<(), BacktestError> {
    let r: RangeResponse = serde_json::from_slice(body)
        .map_err(|e| BacktestError::Source(format!("query_range answer: {e}")))?;
    if r.status != "success" {
        return Err(BacktestError::Source(format!(
            "Prometheus: {}",
            r.error.unwrap_or_else(|| r.status.clone())
        )));
    }
    let data = r
        .data
        .ok_or_else(|| BacktestError::Source("query_range answer without `data`".into()))?;
    if data.result_type != "matrix" {
        return Err(BacktestError::Source(format!(
            "query_range answered a {}, not a matrix",
            data.result_type
        )));
    }
    for item in data.result {
        let mut metric = item.metric;
        let name = metric.remove("__name__").unwrap_or_default();
        let labels: Vec<(String, String)> = metric.into_iter().collect();
        let key = medic_signal::expo::series_key(&name, &labels);
        #[allow(clippy::cast_possible_truncation)]
        let pts = item.values.iter().filter_map(|(t, v)| {
            medic_signal::expo::parse_value(v).map(|v| ((t * 1000.0).round() as i64, v))
        });
        match into.iter_mut().find(|s| s.key == key) {
            Some(s) => s.points.extend(pts),
            None => into.push(RecordedSeries {
                key,
                points: pts.collect(),
            }),
        }
    }
    for s in into.iter_mut() {
        s.points.sort_by_key(|p| p.0);
        s.points.dedup_by_key(|p| p.0);
        s.points.truncate(MAX_POINTS_PER_SERIES);
    }
    if into.len() > medic_signal::rule::MAX_SERIES {
        into.truncate(medic_signal::rule::MAX_SERIES);
    }
    Ok(())
}

/// Runs `query` as range queries over `[from_ms, to_ms]` with `step`, in chunks of at most
/// [`MAX_POINTS_PER_REQUEST`] points.
///
/// # Errors
/// Connection failures, HTTP errors and bad answers (with Prometheus' own message).
pub async fn prometheus_range(
    http: &reqwest::Client,
    base: &str,
    query: &str,
    from_ms: i64,
    to_ms: i64,
    step: Duration,
) -> Result<Vec<RecordedSeries>, BacktestError> {
    let step_ms = i64::try_from(step.as_millis()).unwrap_or(i64::MAX).max(1);
    let mut out = Vec::new();
    let mut start = from_ms;
    while start <= to_ms {
        let end =
            to_ms.min(start.saturating_add(step_ms.saturating_mul(MAX_POINTS_PER_REQUEST - 1)));
        let secs = |ms: i64| format!("{:.3}", ms as f64 / 1000.0);
        let url = reqwest::Url::parse_with_params(
            &format!("{}/api/v1/query_range", base.trim_end_matches('/')),
            &[
                ("query", query.to_string()),
                ("start", secs(start)),
                ("end", secs(end)),
                ("step", format!("{:.3}", step.as_secs_f64())),
            ],
        )
        .map_err(|e| BacktestError::Usage(format!("--prometheus {base}: {e}")))?;
        let resp = http
            .get(url)
            .send()
            .await
            .map_err(|e| BacktestError::Unreachable(format!("{base}: {e}")))?;
        let status = resp.status();
        let body = resp
            .bytes()
            .await
            .map_err(|e| BacktestError::Unreachable(format!("{base}: {e}")))?;
        if !status.is_success() && ![400u16, 422, 503].contains(&status.as_u16()) {
            return Err(BacktestError::Source(format!(
                "{base}: HTTP {status} for query {query:?}"
            )));
        }
        parse_range_response(&body, &mut out)
            .map_err(|e| BacktestError::Source(format!("query {query:?}: {e}")))?;
        start = end.saturating_add(step_ms);
    }
    Ok(out)
}

/// The data of every rule from CSVs: each rule gets every series.
#[must_use]
pub fn csv_rule_data(rules: &[&RuleConfig], series: &[RecordedSeries]) -> Vec<RuleData> {
    rules
        .iter()
        .map(|r| RuleData {
            rule: r.name.clone(),
            series: series.to_vec(),
        })
        .collect()
}
