//! `notify:` (issue 12): channels, routes, escalation, outbox bound.
#![allow(clippy::unwrap_used)]
use std::time::Duration;

use medic_config::{parse, ChannelSpec, PAGERDUTY_EVENTS_URL};
use medic_core::Severity;

const SERVICES: &str = r#"
services:
  web:
    probes:
      up: { tcp: { address: "127.0.0.1:1" } }
"#;

#[test]
fn full_notify_section_parses() {
    let text = format!(
        r#"notify:
  timeout: 3s
  outbox_capacity: 500
  retry: {{ base: 2s, cap: 1m, jitter: 500ms }}
  channels:
    hook: {{ webhook: {{ url: "https://example.test/h", secret_env: HOOK_KEY }} }}
    chat: {{ slack: {{ url: "https://hooks.slack.test/x" }} }}
    room: {{ teams: {{ url: "https://teams.test/x" }} }}
    pd: {{ pagerduty: {{ routing_key: abc }} }}
    mail:
      email: {{ server: "smtp.test:587", starttls: true, from: "medic@x.test", to: ["ops@x.test"], username: medic, password_env: SMTP_PW }}
  routes:
    - channels: [hook, chat]
    - severity: [critical]
      services: [web]
      channels: [pd, mail]
  escalation:
    - {{ after: 30m, channels: [room] }}
    - {{ after: 15m, channels: [pd] }}
{SERVICES}"#
    );
    let cfg = parse("m.yaml", &text).unwrap();
    let n = cfg.notify.unwrap();
    assert_eq!(n.timeout, Duration::from_secs(3));
    assert_eq!(n.outbox_capacity, 500);
    assert_eq!(n.retry.jitter, Duration::from_millis(500));
    assert_eq!(n.channels.len(), 5);
    assert_eq!(
        n.channels["pd"],
        ChannelSpec::PagerDuty {
            url: PAGERDUTY_EVENTS_URL.into(),
            routing_key: "abc".into()
        }
    );
    match &n.channels["mail"] {
        ChannelSpec::Email {
            host,
            port,
            starttls,
            ..
        } => {
            assert_eq!((host.as_str(), *port, *starttls), ("smtp.test", 587, true));
        }
        other => panic!("{other:?}"),
    }
    // Sorted by `after`.
    assert_eq!(n.escalation[0].after, Duration::from_secs(15 * 60));
    assert_eq!(
        n.route(Severity::Warning, "web"),
        vec![vec!["hook".to_string(), "chat".to_string()]]
    );
    assert_eq!(n.route(Severity::Critical, "web").len(), 2);
    assert_eq!(n.route(Severity::Critical, "db").len(), 1);
}

#[test]
fn legacy_webhook_is_one_channel() {
    let text = format!("notify: {{ webhook: \"http://127.0.0.1:9/x\" }}\n{SERVICES}");
    let n = parse("m.yaml", &text).unwrap().notify.unwrap();
    assert_eq!(n.channels.len(), 1);
    assert_eq!(
        n.route(Severity::Info, "web"),
        vec![vec!["webhook".to_string()]]
    );
}

#[test]
fn problems_are_located() {
    let text = format!(
        r#"notify:
  outbox_capacity: 0
  channels:
    a: {{ slack: {{ url: "ftp://x" }} }}
    b: {{ slack: {{ url: "https://x" }}, teams: {{ url: "https://y" }} }}
    c: {{ email: {{ server: "nohost", from: "x", to: [] }} }}
  routes:
    - severity: [urgent]
      channels: [a, missing]
  escalation:
    - {{ after: 15m, channels: [] }}
{SERVICES}"#
    );
    let err = parse("m.yaml", &text).unwrap_err().to_string();
    for want in [
        "m.yaml:2:20: notify.outbox_capacity must be at least 1",
        "m.yaml:4:24: invalid URL `ftp://x`",
        "m.yaml:5:8: notify.channels.b: exactly one of",
        "m.yaml:6:27: invalid server `nohost`",
        "m.yaml:8:18: unknown severity `urgent`",
        "m.yaml:9:17: notify.routes: unknown channel `missing`",
        "m.yaml:11:31: notify.escalation: `channels` must not be empty",
    ] {
        assert!(err.contains(want), "missing {want:?} in:\n{err}");
    }
}

#[test]
fn otlp_section() {
    let text = format!(
        "otlp:\n  endpoints: [\"http://a:4318\", \"http://b:4318\"]\n  buffer_max_bytes: 100000\n{SERVICES}"
    );
    let o = parse("m.yaml", &text).unwrap().otlp.unwrap();
    assert_eq!(o.endpoints.len(), 2);
    assert_eq!(o.buffer_max_bytes, 100_000);
    assert_eq!(o.buffer_dir, std::path::PathBuf::from("otlp-buffer"));
    let text = format!("otlp:\n  endpoints: []\n  buffer_max_bytes: 10\n{SERVICES}");
    let err = parse("m.yaml", &text).unwrap_err().to_string();
    assert!(
        err.contains("m.yaml:2:14: otlp.endpoints must not be empty"),
        "{err}"
    );
    assert!(
        err.contains("m.yaml:3:21: otlp.buffer_max_bytes must be at least 4096"),
        "{err}"
    );
}
