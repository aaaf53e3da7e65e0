//! `medic backtest` on a labelled NAB series (realKnownCause, vendored in data/nab): the
//! incidents it prints are checked against the series' labelled anomaly windows, the governance
//! decisions are dry-run ones, the breaker's mutes are reported, and the plot is a valid SVG
//! carrying one marker per detection and one span per incident.

use std::path::{Path, PathBuf};

use medic_backtest::cli::{render, BacktestArgs, Failure};
use medic_backtest::BacktestError;

const SERIES: &str = "realKnownCause/ec2_request_latency_system_failure";

fn nab() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../data/nab"))
}

/// A data dir holding just the one series, in the NAB layout.
fn data_dir(root: &Path) -> PathBuf {
    let d = root.join("data");
    let cat = d.join("realKnownCause");
    std::fs::create_dir_all(&cat).unwrap_or_else(|e| panic!("{e}"));
    std::fs::copy(
        nab().join("data").join(format!("{SERIES}.csv")),
        cat.join("ec2_request_latency_system_failure.csv"),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    d
}

pub const CONFIG: &str = r#"
mode: conservative
services:
  api:
    probes:
      healthz:
        http: { url: "http://127.0.0.1:1/healthz" }
    actions:
      shed-load:
        http: { url: "http://127.0.0.1:1/admin/shed", method: POST }
        risk: low
      restart-fleet:
        http: { url: "http://127.0.0.1:1/admin/restart", method: POST }
        risk: high
    remediate:
      - when: { probe: latency_anomaly, condition: failing }
        action: shed-load
      - when: { probe: latency_high, condition: failing }
        action: restart-fleet
signals:
  sources:
    prom:
      prometheus: { url: "http://127.0.0.1:9" }
      interval: 5m
  rules:
    latency_anomaly:
      service: api
      source: prom
      query: nab_value
      detector: default
      threshold: 0.5
    latency_high:
      service: api
      source: prom
      query: nab_value
      above: 45
      breaker: { baseline: 1, factor: 2, cooldown: 6h }
"#;

fn args(root: &Path, rules: &[&str]) -> BacktestArgs {
    let cfg = root.join("medic.yaml");
    std::fs::write(&cfg, CONFIG).unwrap_or_else(|e| panic!("{e}"));
    BacktestArgs {
        config: cfg,
        data: Some(data_dir(root)),
        prometheus: None,
        from: None,
        to: None,
        step: None,
        rules: rules.iter().map(|s| (*s).to_string()).collect(),
        plots: root.join("plots"),
        no_plots: false,
        json: true,
    }
}

fn run_json(a: &BacktestArgs) -> (serde_json::Value, Vec<PathBuf>) {
    let (out, plots) = match render(a) {
        Ok(x) => x,
        Err(Failure::Config(e)) => panic!("{e}"),
        Err(Failure::Backtest(e)) => panic!("{e}"),
    };
    (
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}")),
        plots,
    )
}

fn unix_ms(rfc3339: &str) -> i64 {
    medic_backtest::parse_time(rfc3339).unwrap_or_else(|e| panic!("{e}"))
}

/// The labelled windows of the series, in unix ms.
fn windows() -> Vec<(i64, i64)> {
    let all = medic_nab::load_windows(&nab().join("combined_windows.json"))
        .unwrap_or_else(|e| panic!("{e}"));
    all.get(&format!("{SERIES}.csv"))
        .unwrap_or_else(|| panic!("no windows for {SERIES}"))
        .iter()
        .map(|&(a, b)| (a.div_euclid(1000), b.div_euclid(1000)))
        .collect()
}

#[test]
fn detector_rule_incidents_match_the_labelled_windows() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let (v, plots) = run_json(&args(dir.path(), &["latency_anomaly"]));
    assert_eq!(v["mode"], "dry-run");
    let rule = &v["rules"][0];
    assert_eq!(rule["rule"], "latency_anomaly");
    assert_eq!(rule["samples"], 4032);
    let incidents = rule["incidents"].as_array().cloned().unwrap_or_default();
    let opened: Vec<i64> = incidents
        .iter()
        .map(|i| unix_ms(i["opened"].as_str().unwrap_or("")))
        .collect();
    let wins = windows();
    assert_eq!(wins.len(), 3);
    // Every labelled window gets an incident opened inside it.
    for (a, b) in &wins {
        assert!(
            opened.iter().any(|t| (a..=b).contains(&t)),
            "window {a}..{b} has no incident; opened: {opened:?}"
        );
    }
    // Outside the windows, after the detector's first two days (NAB's learning period, 15 %
    // of the rows): at most 3 incidents (measured: 3, on 2014-03-10 and 03-11).
    let learned = unix_ms("2014-03-09T06:00:00Z");
    let false_alarms = opened
        .iter()
        .filter(|t| **t >= learned && !wins.iter().any(|(a, b)| (a..=b).contains(t)))
        .count();
    assert!(
        false_alarms <= 3,
        "{false_alarms} incidents outside the windows: {opened:?}"
    );
    // One incident per firing; each closed, with the dry-run decision of what medic would do.
    assert_eq!(
        incidents.len(),
        rule["firings"].as_array().map_or(0, Vec::len)
    );
    for i in &incidents {
        assert!(i["closed"].is_string(), "{i}");
        assert_eq!(i["outcome"], "would-act", "{i}");
        let d = &i["decisions"][0];
        assert_eq!(d["action"], "shed-load", "{i}");
        assert_eq!(d["verdict"], "would-act", "{i}");
        assert_eq!(d["reason_code"], "mode_dry_run", "{i}");
        assert_eq!(d["at"], i["opened"], "{i}");
    }
    // The plot: a valid SVG with one red dot per detection and one span per incident.
    assert_eq!(plots.len(), 1);
    let svg = std::fs::read_to_string(&plots[0]).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"),
        "not an SVG"
    );
    assert_eq!(svg.matches("<svg").count(), 1);
    let detections = rule["series"][0]["detections"].as_u64().unwrap_or(0);
    assert!(detections >= incidents.len() as u64);
    assert_eq!(
        svg.matches("<circle").count(),
        usize::try_from(detections).unwrap_or(0),
        "detection markers"
    );
    assert_eq!(
        svg.matches(r##"fill="#D62728""##).count(),
        usize::try_from(detections).unwrap_or(0)
    );
    assert_eq!(
        svg.matches(r##"fill="#FF7F0E""##).count(),
        incidents.len(),
        "incident spans"
    );
    assert!(svg.contains("latency_anomaly on realKnownCause/ec2_request_latency_system_failure"));
}

#[test]
fn text_report_names_firings_incidents_decisions_and_mutes() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let mut a = args(dir.path(), &[]);
    a.json = false;
    a.no_plots = true;
    let (out, plots) = match render(&a) {
        Ok(x) => x,
        Err(Failure::Config(e)) => panic!("{e}"),
        Err(Failure::Backtest(e)) => panic!("{e}"),
    };
    assert!(plots.is_empty());
    assert!(
        out.contains("rule latency_anomaly (service api): detector default >= 0.5"),
        "{out}"
    );
    assert!(
        out.contains("rule latency_high (service api): above 45"),
        "{out}"
    );
    assert!(
        out.contains("would-act [mode_dry_run] dry-run: would run shed-load (http, low risk)"),
        "{out}"
    );
    // A high-risk action: dry-run says what the real (conservative) mode would need.
    assert!(
        out.contains("would run restart-fleet (http, high risk)"),
        "{out}"
    );
    // latency_high fires often; its breaker (limit 2 firings/h) mutes it.
    assert!(out.contains("breaker mutes:"), "{out}");
    assert!(out.contains("muted at 3.0 firings/h (limit 2.0)"), "{out}");
}

#[test]
fn from_and_to_bound_the_replay() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let mut a = args(dir.path(), &["latency_anomaly"]);
    a.from = Some("2014-03-10 00:00:00".into());
    a.to = Some("2014-03-12T00:00:00Z".into());
    a.no_plots = true;
    let (v, _) = run_json(&a);
    assert_eq!(v["from"], "2014-03-10T00:01:00Z");
    assert_eq!(v["rules"][0]["samples"], 576);
}

fn backtest_err(a: &BacktestArgs) -> BacktestError {
    match render(a) {
        Ok(_) => panic!("expected an error"),
        Err(Failure::Config(e)) => panic!("config error {e}"),
        Err(Failure::Backtest(e)) => e,
    }
}

#[test]
fn bad_input_is_named() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let a = args(dir.path(), &["nope"]);
    assert!(matches!(backtest_err(&a), BacktestError::Usage(m) if m.contains("--rule nope")));
    let mut a = args(dir.path(), &[]);
    a.from = Some("yesterday".into());
    assert!(matches!(backtest_err(&a), BacktestError::Usage(m) if m.contains("yesterday")));
    let mut a = args(dir.path(), &[]);
    a.data = Some(dir.path().join("missing"));
    assert!(matches!(backtest_err(&a), BacktestError::NotFound(m) if m.contains("missing")));
    let mut a = args(dir.path(), &[]);
    let bad = dir.path().join("bad");
    std::fs::create_dir_all(&bad).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(
        bad.join("x.csv"),
        "timestamp,value\n2014-01-01 00:00:00,1\nnot-a-time,2\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    a.data = Some(bad);
    assert!(matches!(backtest_err(&a), BacktestError::Data(m) if m.contains("x.csv:3")));
    let mut a = args(dir.path(), &[]);
    a.data = None;
    a.prometheus = Some("http://127.0.0.1:9".into());
    assert!(matches!(backtest_err(&a), BacktestError::Usage(m) if m.contains("--from and --to")));
    let mut a = args(dir.path(), &[]);
    std::fs::write(&a.config, "services: [").unwrap_or_else(|e| panic!("{e}"));
    a.config = dir.path().join("medic.yaml");
    assert!(matches!(render(&a), Err(Failure::Config(_))));
}

/// The rule's `for` runs on the simulated clock (the samples' time), not on real time: with
/// 5-minute samples and `for: 10m`, a breach starting at minute 10 fires at minute 20.
#[test]
fn for_durations_run_on_the_simulated_clock() {
    let yaml = r#"
services:
  api:
    probes:
      healthz:
        http: { url: "http://127.0.0.1:1/healthz" }
signals:
  sources:
    prom:
      prometheus: { url: "http://127.0.0.1:9" }
      interval: 5m
  rules:
    high:
      service: api
      source: prom
      query: q
      above: 5
      for: 10m
"#;
    let cfg = medic_config::parse("inline.yaml", yaml).unwrap_or_else(|e| panic!("{e}"));
    let t0 = 1_700_000_000_000i64;
    let values = [0.0, 0.0, 10.0, 10.0, 10.0, 10.0, 0.0, 0.0];
    let points: Vec<(i64, f64)> = values
        .iter()
        .enumerate()
        .map(|(i, v)| (t0 + i64::try_from(i).unwrap_or(0) * 300_000, *v))
        .collect();
    let data = [medic_backtest::RuleData {
        rule: "high".into(),
        series: vec![medic_backtest::replay::RecordedSeries {
            key: "q".into(),
            points,
        }],
    }];
    let r = medic_backtest::replay(&cfg, &data, i64::MIN, i64::MAX, &mut |_, _| {});
    let rule = &r.rules[0];
    assert_eq!(rule.samples, 8);
    assert_eq!(rule.series[0].detections.len(), 4, "breached samples");
    assert_eq!(rule.firings.len(), 1);
    assert_eq!(
        rule.firings[0].at_ms,
        t0 + 4 * 300_000,
        "fires once the breach lasted 10m"
    );
    assert_eq!(rule.incidents.len(), 1);
    assert_eq!(rule.incidents[0].opened_ms, t0 + 4 * 300_000);
    assert_eq!(
        rule.incidents[0].closed_ms,
        Some(t0 + 6 * 300_000),
        "closed when healthy"
    );
    // No `remediate:` entry names the rule: the incident escalates to a human.
    assert_eq!(rule.incidents[0].outcome.as_deref(), Some("escalated"));
    assert!(rule.incidents[0].decisions.is_empty());
    assert_eq!(r.notifications.len(), 1, "{:?}", r.notifications);
}
