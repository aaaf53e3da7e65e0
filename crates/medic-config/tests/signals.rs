#![allow(clippy::unwrap_used, clippy::expect_used)]
use std::time::Duration;

use medic_config::{parse, Check, NoData, Selector, SourceKind};

const DOC: &str = include_str!("../../../docs/signals.md");

fn errs(text: &str) -> String {
    parse("medic.yaml", text).unwrap_err().to_string()
}

/// The ```yaml blocks of docs/signals.md that are whole configs.
fn doc_configs() -> Vec<String> {
    let mut out = Vec::new();
    let mut cur: Option<String> = None;
    for line in DOC.lines() {
        match (&mut cur, line.trim_start()) {
            (None, "```yaml") => cur = Some(String::new()),
            (Some(block), "```") => {
                if block.lines().any(|l| l == "services:") {
                    out.push(std::mem::take(block));
                }
                cur = None;
            }
            (Some(block), _) => {
                block.push_str(line);
                block.push('\n');
            }
            (None, _) => {}
        }
    }
    out
}

#[test]
fn documented_example_is_valid_and_complete() {
    let docs = doc_configs();
    assert_eq!(docs.len(), 1);
    let cfg = parse("docs/signals.md", &docs[0]).unwrap_or_else(|e| panic!("{e}"));
    let s = &cfg.signals;
    assert_eq!(s.sources.len(), 3);
    assert_eq!(s.rules.len(), 8);
    let names: Vec<&str> = s.rules.iter().map(|r| r.name.as_str()).collect();
    for seed in [
        "web_error_rate_spike",
        "web_latency_spike",
        "web_memory_leak",
        "worker_queue_full",
        "worker_heartbeat_stale",
        "web_4xx_surge",
        "web_healthcheck_timeouts",
        "web_stack_traces",
    ] {
        assert!(names.contains(&seed), "{seed} missing");
    }
    let leak = s
        .rules
        .iter()
        .find(|r| r.name == "web_memory_leak")
        .unwrap();
    assert_eq!(
        leak.check,
        Check::Detector {
            name: "trend".into(),
            threshold: 0.8
        }
    );
    assert_eq!(leak.for_, Duration::from_secs(600));
    let hb = s
        .rules
        .iter()
        .find(|r| r.name == "worker_heartbeat_stale")
        .unwrap();
    assert_eq!(hb.no_data, NoData::Fail);
    let st = s
        .rules
        .iter()
        .find(|r| r.name == "web_stack_traces")
        .unwrap();
    assert_eq!(st.breaker.baseline_per_hour, 4.0);
    assert_eq!(st.breaker.cooldown, Duration::from_secs(1800));
    assert_eq!(st.breaker.factor, 3.0);
    let Selector::Match(re) = &st.selector else {
        panic!("{:?}", st.selector)
    };
    assert!(re.contains("thread '.*' panicked"), "{re}");
    assert!(matches!(
        s.source("web_log").unwrap().kind,
        SourceKind::Log {
            from_start: false,
            ..
        }
    ));

    // Virtual probes reach the engine but not the daemon's probe loops.
    let web = cfg
        .engine
        .services
        .iter()
        .find(|s| s.name == "web")
        .unwrap();
    let vp = web
        .probes
        .iter()
        .find(|p| p.name == "web_latency_spike")
        .unwrap();
    assert_eq!(vp.failure.consecutive, 1);
    assert_eq!(vp.recovery.consecutive, 1);
    assert!(web.probes.iter().any(|p| p.name == "FixtureSlow"));
    assert!(web.probes.iter().any(|p| p.name == "DiskAlmostFull"));
    let worker = cfg
        .engine
        .services
        .iter()
        .find(|s| s.name == "worker")
        .unwrap();
    assert!(!worker.probes.iter().any(|p| p.name == "FixtureSlow"));
    assert!(worker.probes.iter().any(|p| p.name == "DiskAlmostFull"));
    let web_cfg = cfg.services.iter().find(|s| s.name == "web").unwrap();
    assert_eq!(web_cfg.probes.len(), 1, "only healthz is a real probe");
    assert!(s.alertmanager.accepts("FixtureSlow", "web"));
    assert!(!s.alertmanager.accepts("FixtureSlow", "worker"));
    assert!(s.alertmanager.accepts("DiskAlmostFull", "worker"));
}

/// Every field of the signals schema appears, in backticks, in docs/signals.md.
#[test]
fn every_signals_field_is_documented() {
    for field in [
        "signals:",
        "sources",
        "rules",
        "alertmanager",
        "breaker",
        "prometheus.url",
        "scrape.url",
        "log.path",
        "log.from_start",
        "interval",
        "timeout",
        "service",
        "source",
        "query",
        "metric",
        "labels",
        "match",
        "above",
        "below",
        "detector",
        "threshold",
        "for",
        "no_data",
        "failure.consecutive",
        "failure.within",
        "recovery.consecutive",
        "service_label",
        "alerts.ALERTNAME",
        "alerts.ALERTNAME.services",
        "alerts.ALERTNAME.recovery.consecutive",
        "enabled",
        "baseline",
        "factor",
        "cooldown",
    ] {
        assert!(
            DOC.contains(&format!("`{field}`")),
            "`{field}` is not documented in docs/signals.md"
        );
    }
    for name in medic_detect::NAMES {
        assert!(
            DOC.contains(&format!("`{name}`")),
            "detector `{name}` not documented"
        );
    }
}

const BASE: &str = "services:
  web:
    probes:
      hz:
        http: { url: http://127.0.0.1:1/healthz }
";

#[test]
fn service_with_only_signal_rules_is_valid_and_remediate_may_name_a_rule() {
    let text = "services:
  api:
    actions:
      kick:
        exec: { command: [true] }
    remediate:
      - when: { probe: api_errors }
        action: kick
signals:
  sources:
    log: { log: { path: /tmp/api.log, from_start: true }, interval: 1s }
  rules:
    api_errors:
      service: api
      source: log
      match: 'ERROR'
      above: 5
";
    let cfg = parse("m.yaml", text).unwrap_or_else(|e| panic!("{e}"));
    let spec = &cfg.engine.services[0];
    assert_eq!(spec.probes.len(), 1);
    assert_eq!(spec.remediations[0].probe, "api_errors");
    assert!(cfg.services[0].probes.is_empty());
    assert_eq!(cfg.signals.sources[0].interval, Duration::from_secs(1));
    assert_eq!(
        cfg.signals.rules[0].check,
        Check::Threshold {
            above: Some(5.0),
            below: None
        }
    );
}

#[test]
fn a_rules_kind_names_its_signal_in_root_cause_ranking() {
    let text = |kind: &str| {
        format!(
            "services:
  api: {{}}
signals:
  sources:
    log: {{ log: {{ path: /tmp/api.log }}, interval: 1s }}
  rules:
    api_errors:
      service: api
      source: log
      match: 'ERROR'
      above: 5
{kind}"
        )
    };
    let cfg = parse("m.yaml", &text("      kind: errors\n")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(cfg.signals.rules[0].kind.as_deref(), Some("errors"));
    assert_eq!(cfg.signals.rules[0].signal_kind(), "errors");
    let cfg = parse("m.yaml", &text("")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(cfg.signals.rules[0].signal_kind(), "api_errors");
    // medic's own probe signals are not a rule's kind.
    let err = parse("m.yaml", &text("      kind: latency\n"))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("m.yaml:12:") && err.contains("kind must be non-empty and not `latency`"),
        "{err}"
    );
}

#[test]
fn no_signals_section_means_empty() {
    let cfg = parse("m.yaml", BASE).unwrap();
    assert!(cfg.signals.is_empty());
    assert_eq!(cfg.signals.alertmanager.service_label, "service");
}

#[test]
fn signal_problems_are_located_and_all_collected() {
    let text = format!(
        "{BASE}    remediate:
      - when: {{ probe: nosuchrule }}
        action: nope
signals:
  sources:
    p: {{ prometheus: {{ url: 'ftp://x' }} }}
    both: {{ scrape: {{ url: 'http://x/metrics' }}, log: {{ path: /x }} }}
    l: {{ log: {{ path: /x }} }}
  rules:
    r1:
      service: ghost
      source: p
      query: up
      above: 1
    r2:
      service: web
      source: nosource
      above: 1
    r3:
      service: web
      source: p
      metric: up
      above: 1
    r4:
      service: web
      source: l
      match: '(unclosed'
      detector: zscore
      threshold: 2
    r5:
      service: web
      source: p
      query: up
      detector: nope
    hz:
      service: web
      source: p
      query: up
      below: 1
      breaker: {{ factor: 0.5 }}
  alertmanager:
    alerts:
      A: {{ services: [ghost] }}
"
    );
    let e = errs(&text);
    let lines: Vec<&str> = e.lines().collect();
    let want = [
        "medic.yaml:7:24: remediation names undefined probe `nosuchrule` in service web",
        "medic.yaml:8:17: remediation names undefined action `nope`",
        "medic.yaml:11:29: invalid URL `ftp://x`",
        "medic.yaml:12:11: signal source both: exactly one of prometheus, scrape or log is required (found 2)",
        "medic.yaml:16:16: signal rule r1 names undefined service `ghost`",
        "medic.yaml:22:15: signal rule r2 names undefined source `nosource`",
        "medic.yaml:25:7: signal rule r3: a prometheus source needs exactly `query`",
        "medic.yaml:32:14: invalid regex `(unclosed`: unclosed group",
        "medic.yaml:34:18: threshold must be in (0, 1]",
        "medic.yaml:39:17: unknown detector `nope`",
        "medic.yaml:41:7: signal rule hz has the same name as a probe of service web",
        "medic.yaml:45:26: breaker.factor must be at least 1",
        "medic.yaml:48:22: alert A names undefined service `ghost`",
    ];
    for w in want {
        assert!(
            lines.iter().any(|l| l.starts_with(w)),
            "missing {w:?} in:\n{e}"
        );
    }
    // And the source with two kinds is not half-accepted.
    assert!(!lines.iter().any(|l| l.contains("panic")));
}

#[test]
fn slow_condition_on_a_signal_rule_is_rejected() {
    let text = format!(
        "{BASE}    actions:
      kick: {{ exec: {{ command: [true] }} }}
    remediate:
      - when: {{ probe: lat, condition: slow }}
        action: kick
signals:
  sources:
    p: {{ prometheus: {{ url: 'http://127.0.0.1:9091' }} }}
  rules:
    lat: {{ service: web, source: p, query: up, above: 1 }}
"
    );
    let e = errs(&text);
    assert!(
        e.contains("condition `slow` needs a `latency:` rule on probe `lat`"),
        "{e}"
    );
}

#[test]
fn rule_shape_errors() {
    let cases = [
        (
            "    r: { service: web, source: p, query: up }\n",
            "needs `above`, `below` or `detector`",
        ),
        (
            "    r: { service: web, source: p, query: up, above: 1, detector: zscore }\n",
            "use either a detector or above/below, not both",
        ),
        (
            "    r: { service: web, source: p, query: up, above: 1, threshold: 0.5 }\n",
            "threshold is the detector score cut-off",
        ),
        (
            "    r: { service: web, source: p, query: up, above: 1, no_data: maybe }\n",
            "unknown no_data `maybe`",
        ),
        (
            "    r: { service: web, source: p, query: up, above: 1, labels: { a: b } }\n",
            "`labels` only applies to `metric`",
        ),
        (
            "    r: { service: web, source: p, query: up, above: 1, bogus: 1 }\n",
            "unknown field `bogus`",
        ),
        (
            "    r: { service: web, source: p, query: up, above: 1, breaker: { baseline: 0 } }\n",
            "breaker.baseline must be a positive number",
        ),
    ];
    for (rule, want) in cases {
        let text = format!(
            "{BASE}signals:\n  sources:\n    p: {{ prometheus: {{ url: 'http://x' }} }}\n  rules:\n{rule}"
        );
        let e = errs(&text);
        assert!(e.contains(want), "{rule}: want {want:?}, got:\n{e}");
        assert!(e.starts_with("medic.yaml:"), "{e}");
    }
}

#[test]
fn alert_name_may_not_shadow_a_probe() {
    let text = format!("{BASE}signals:\n  alertmanager:\n    alerts:\n      hz: {{}}\n");
    let e = errs(&text);
    assert!(
        e.contains("alert hz has the same name as a probe or signal rule of service web"),
        "{e}"
    );
}
