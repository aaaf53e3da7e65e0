#![allow(clippy::unwrap_used, clippy::expect_used)]
//! `services.<name>.canary` (issue 10): reaches the engine's plan and the
//! daemon's sampling config; bad values are located (FILE:LINE:COL).
use std::time::Duration;

use medic_config::parse;

const BASE: &str = "services:
  web:
    probes:
      up: { http: { url: 'http://127.0.0.1:1/healthz' } }
    actions:
      change: { exec: { command: [true] }, revert: { action: undo, after: 1h } }
      undo: { exec: { command: [true] } }
";

#[test]
fn canary_section_reaches_the_engine_and_the_daemon() {
    let text = format!(
        "{BASE}    canary:
      instances:
        - {{ name: a, url: 'http://127.0.0.1:1/healthz' }}
        - {{ name: b, url: 'http://127.0.0.1:2/healthz' }}
        - {{ name: c, url: 'http://127.0.0.1:3/healthz' }}
      stages: [25, 100]
      window: 7s
      interval: 50ms
      confidence: 0.99
      min_samples: 5
      latency: {{ allowed_relative: 0.5 }}
      errors: {{ allowed_absolute: 0.1 }}
"
    );
    let cfg = parse("c.yaml", &text).unwrap();
    let plan = &cfg.engine.governance.canaries["web"];
    assert_eq!(plan.instances, ["a", "b", "c"]);
    assert_eq!(plan.stages, [25, 100]);
    assert_eq!(plan.window, Duration::from_secs(7));
    assert_eq!(plan.judge.confidence, 0.99);
    assert_eq!(plan.judge.min_samples, 5);
    assert_eq!(plan.judge.pass_score, 0.95, "default");
    assert_eq!(plan.metrics[0].allowed_relative, 0.5);
    assert_eq!(plan.metrics[0].allowed_absolute, 5.0, "default");
    assert_eq!(plan.metrics[1].allowed_absolute, 0.1);
    assert_eq!(cfg.engine.governance.services["web"].instances, 3);
    let sampling = cfg.services[0].canary.as_ref().unwrap();
    assert_eq!(sampling.url("b"), Some("http://127.0.0.1:2/healthz"));
    assert_eq!(sampling.interval, Duration::from_millis(50));
}

#[test]
fn canary_errors_are_located() {
    let text = format!(
        "{BASE}    canary:
      instances:
        - {{ name: a, url: 'ftp://x' }}
        - {{ name: a, url: 'http://127.0.0.1:2/' }}
      stages: [50, 10]
      confidence: 1.5
      marginal_score: 0.99
      pass_score: 0.9
      min_samples: 0
      max_spread_ratio: 0.5
      latency: {{ allowed_relative: -1 }}
"
    );
    let e = parse("c.yaml", &text).unwrap_err().to_string();
    for want in [
        "c.yaml:10:27: invalid URL `ftp://x`",
        "c.yaml:11:19: duplicate canary instance `a`",
        "c.yaml:12:15: canary.stages must be ascending",
        "c.yaml:13:19: canary.confidence must be between 0 and 1",
        "c.yaml:14:23: canary.marginal_score (0.99) must not exceed pass_score (0.9)",
        "canary.min_samples must be at least 1",
        "canary.max_spread_ratio must be at least 1",
        "canary latency_ms.allowed_relative must be a number >= 0",
    ] {
        assert!(e.contains(want), "missing `{want}` in:\n{e}");
    }
    let one = format!(
        "{BASE}    canary:
      instances: [{{ name: a, url: 'http://127.0.0.1:1/' }}]
"
    );
    let e = parse("c.yaml", &one).unwrap_err().to_string();
    assert!(
        e.contains("canary.instances needs at least 2 instances (got 1)"),
        "{e}"
    );
    let typo = format!("{BASE}    canary: {{ instances: [], windw: 3s }}\n");
    let e = parse("c.yaml", &typo).unwrap_err().to_string();
    assert!(e.contains("windw"), "{e}");
}
