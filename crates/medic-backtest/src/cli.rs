//! `medic backtest -c medic.yaml --data DIR|--prometheus URL [--from T] [--to T] [--json]`.

use std::fmt::Write as _;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Duration;

use crate::data::{
    csv_rule_data, prometheus_range, promql, read_csv_dir, replayable_rules, rule_step,
};
use crate::replay::{replay, Report, RuleData};
use crate::{fmt_time, parse_time, BacktestError};

/// `medic backtest`: replay recorded metrics through a config in dry-run.
#[derive(Debug, Clone, clap::Args)]
pub struct BacktestArgs {
    /// The config whose signal rules, detectors and governance are replayed.
    #[arg(short, long, default_value = "medic.yaml")]
    pub config: PathBuf,
    /// Recorded metrics as CSV files (`timestamp,value`; `DIR/<category>/*.csv` as in NAB, or
    /// `DIR/*.csv`). Every replayed rule is evaluated on every file.
    #[arg(
        long,
        value_name = "DIR",
        conflicts_with = "prometheus",
        required_unless_present = "prometheus"
    )]
    pub data: Option<PathBuf>,
    /// Recorded metrics from a Prometheus server: each rule's query (or metric selector) as a
    /// range query over --from..--to.
    #[arg(long, value_name = "URL")]
    pub prometheus: Option<String>,
    /// Start (RFC 3339, `YYYY-MM-DD HH:MM:SS` UTC, or unix seconds); required with
    /// --prometheus, else the first sample.
    #[arg(long, value_name = "T")]
    pub from: Option<String>,
    /// End (same formats); required with --prometheus, else the last sample.
    #[arg(long, value_name = "T")]
    pub to: Option<String>,
    /// Range-query step for --prometheus (default: each rule's source `interval`).
    #[arg(long, value_name = "DURATION")]
    pub step: Option<String>,
    /// Replay only this rule (repeatable); default: every rule on a prometheus or scrape
    /// source.
    #[arg(long = "rule", value_name = "NAME")]
    pub rules: Vec<String>,
    /// Where the SVG plots go (one per rule and series).
    #[arg(long, value_name = "DIR", default_value = "backtest-plots")]
    pub plots: PathBuf,
    /// Draw no plots.
    #[arg(long)]
    pub no_plots: bool,
    /// Print one JSON object instead of the text report.
    #[arg(long)]
    pub json: bool,
}

/// A failed backtest: the error and whether it is a config error (printed as
/// `FILE:LINE:COL: message` lines).
#[derive(Debug)]
pub enum Failure {
    /// The config file is invalid.
    Config(medic_config::ConfigError),
    /// Anything else.
    Backtest(BacktestError),
}

impl From<BacktestError> for Failure {
    fn from(e: BacktestError) -> Self {
        Failure::Backtest(e)
    }
}

fn progress_bar() -> Option<indicatif::ProgressBar> {
    if !std::io::stderr().is_terminal() {
        return None;
    }
    let b = indicatif::ProgressBar::new(0);
    if let Ok(style) =
        indicatif::ProgressStyle::with_template("replaying {bar:40} {pos}/{len} samples")
    {
        b.set_style(style);
    }
    Some(b)
}

/// Runs the backtest and returns what it prints (text or JSON) and the plots written.
///
/// # Errors
/// See [`Failure`].
pub fn render(args: &BacktestArgs) -> Result<(String, Vec<PathBuf>), Failure> {
    if !args.config.is_file() {
        return Err(
            BacktestError::NotFound(format!("{}: no such file", args.config.display())).into(),
        );
    }
    let cfg = medic_config::load(&args.config).map_err(Failure::Config)?;
    let from = args.from.as_deref().map(parse_time).transpose()?;
    let to = args.to.as_deref().map(parse_time).transpose()?;
    if let (Some(a), Some(b)) = (from, to) {
        if a > b {
            return Err(BacktestError::Usage("--from is after --to".into()).into());
        }
    }
    let step = args
        .step
        .as_deref()
        .map(|s| {
            humantime::parse_duration(s)
                .map_err(|e| BacktestError::Usage(format!("--step {s:?}: {e}")))
        })
        .transpose()?;
    let rules = replayable_rules(&cfg, &args.rules)?;
    let data: Vec<RuleData> = match (&args.data, &args.prometheus) {
        (Some(dir), _) => csv_rule_data(&rules, &read_csv_dir(dir)?),
        (None, Some(url)) => {
            let (Some(from), Some(to)) = (from, to) else {
                return Err(
                    BacktestError::Usage("--prometheus needs --from and --to".into()).into(),
                );
            };
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| BacktestError::Source(format!("tokio runtime: {e}")))?;
            let http = reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .map_err(|e| BacktestError::Source(format!("HTTP client: {e}")))?;
            let mut out = Vec::new();
            for r in &rules {
                let Some(q) = promql(r) else { continue };
                let st = rule_step(&cfg, r, step);
                let series = rt.block_on(prometheus_range(&http, url, &q, from, to, st))?;
                out.push(RuleData {
                    rule: r.name.clone(),
                    series,
                });
            }
            out
        }
        (None, None) => {
            return Err(BacktestError::Usage("give --data DIR or --prometheus URL".into()).into())
        }
    };
    let bar = progress_bar();
    let mut tick = |done: usize, total: usize| {
        if let Some(b) = &bar {
            b.set_length(total as u64);
            b.set_position(done as u64);
        }
    };
    // The rules log mutes as they happen (real time); here they are part of the report.
    let report =
        tracing::subscriber::with_default(tracing::subscriber::NoSubscriber::default(), || {
            replay(
                &cfg,
                &data,
                from.unwrap_or(i64::MIN),
                to.unwrap_or(i64::MAX),
                &mut tick,
            )
        });
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    let plots = if args.no_plots {
        Vec::new()
    } else {
        crate::plot::draw_all(&args.plots, &report.rules, report.to_ms)?
    };
    let text = if args.json {
        json(&report, &plots)
    } else {
        text(&args.config, &report, &plots)
    };
    Ok((text, plots))
}

fn opt_time(t: Option<i64>) -> serde_json::Value {
    t.map_or(serde_json::Value::Null, |t| fmt_time(t).into())
}

/// The report as one JSON object.
#[must_use]
pub fn json(r: &Report, plots: &[PathBuf]) -> String {
    let rules: Vec<_> = r
        .rules
        .iter()
        .map(|rr| {
            serde_json::json!({
                "rule": rr.rule,
                "service": rr.service,
                "condition": rr.condition,
                "samples": rr.samples,
                "series": rr.series.iter().map(|s| serde_json::json!({
                    "key": s.key, "samples": s.points.len(), "detections": s.detections.len(),
                })).collect::<Vec<_>>(),
                "firings": rr.firings.iter().map(|f| serde_json::json!({
                    "at": fmt_time(f.at_ms), "detail": f.detail,
                })).collect::<Vec<_>>(),
                "incidents": rr.incidents.iter().map(|i| serde_json::json!({
                    "id": i.id,
                    "service": i.service,
                    "trigger": i.trigger,
                    "opened": fmt_time(i.opened_ms),
                    "closed": opt_time(i.closed_ms),
                    "outcome": i.outcome,
                    "cause": i.cause,
                    "decisions": i.decisions.iter().map(|d| serde_json::json!({
                        "at": fmt_time(d.at_ms),
                        "action": d.action,
                        "verdict": d.verdict,
                        "reason_code": d.reason_code,
                        "reason": d.reason,
                    })).collect::<Vec<_>>(),
                })).collect::<Vec<_>>(),
                "mutes": rr.mutes.iter().map(|m| serde_json::json!({
                    "at": fmt_time(m.at_ms),
                    "rate_per_hour": m.rate_per_hour,
                    "limit_per_hour": m.limit_per_hour,
                    "until": fmt_time(m.until_ms),
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    let v = serde_json::json!({
        "from": fmt_time(r.from_ms),
        "to": fmt_time(r.to_ms),
        "mode": "dry-run",
        "rules": rules,
        "notifications": r.notifications.iter().map(|(t, title)| serde_json::json!({"at": fmt_time(*t), "title": title})).collect::<Vec<_>>(),
        "plots": plots.iter().map(|p| p.display().to_string()).collect::<Vec<_>>(),
    });
    format!("{v}\n")
}

/// The report as text.
#[must_use]
pub fn text(config: &std::path::Path, r: &Report, plots: &[PathBuf]) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "backtest of {} from {} to {}: {} rule(s), dry-run on a simulated clock",
        config.display(),
        fmt_time(r.from_ms),
        fmt_time(r.to_ms),
        r.rules.len()
    );
    for rr in &r.rules {
        let _ = writeln!(
            s,
            "\nrule {} (service {}): {}\n  {} samples in {} series; {} firings, {} incidents, {} breaker mutes",
            rr.rule,
            rr.service,
            rr.condition,
            rr.samples,
            rr.series.len(),
            rr.firings.len(),
            rr.incidents.len(),
            rr.mutes.len()
        );
        if !rr.firings.is_empty() {
            let _ = writeln!(s, "  firings:");
            for f in &rr.firings {
                let _ = writeln!(s, "    {}  {}", fmt_time(f.at_ms), f.detail);
            }
        }
        if !rr.incidents.is_empty() {
            let _ = writeln!(s, "  incidents:");
            for i in &rr.incidents {
                let closed = i.closed_ms.map_or_else(
                    || "still open at the end".to_string(),
                    |c| format!("closed {}", fmt_time(c)),
                );
                let _ = writeln!(
                    s,
                    "    incident {} opened {} {} ({}); cause: {}",
                    i.id,
                    fmt_time(i.opened_ms),
                    closed,
                    i.outcome.as_deref().unwrap_or("open"),
                    i.cause
                );
                if i.decisions.is_empty() {
                    let _ = writeln!(
                        s,
                        "      no action planned (no remediate entry: escalation only)"
                    );
                }
                for d in &i.decisions {
                    let _ = writeln!(
                        s,
                        "      {}  {}: {} [{}] {}",
                        fmt_time(d.at_ms),
                        d.action,
                        d.verdict,
                        d.reason_code.as_deref().unwrap_or("-"),
                        d.reason
                    );
                }
            }
        }
        if !rr.mutes.is_empty() {
            let _ = writeln!(s, "  breaker mutes:");
            for m in &rr.mutes {
                let _ = writeln!(
                    s,
                    "    {}  muted at {:.1} firings/h (limit {:.1}) until {}",
                    fmt_time(m.at_ms),
                    m.rate_per_hour,
                    m.limit_per_hour,
                    fmt_time(m.until_ms)
                );
            }
        }
    }
    if !r.notifications.is_empty() {
        let _ = writeln!(s, "\nnotifications medic would have sent:");
        for (t, title) in &r.notifications {
            let _ = writeln!(s, "  {}  {title}", fmt_time(*t));
        }
    }
    if !plots.is_empty() {
        let _ = writeln!(s, "\nplots ({}):", plots.len());
        for p in plots {
            let _ = writeln!(s, "  {}", p.display());
        }
    }
    s
}
