#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Issue 10 config: `verify:` on actions, `revert.green_checks`/`probe`,
//! `governance.breaker`, and located errors for each.
use std::time::Duration;

use medic_config::parse;

const BASE: &str = "services:
  web:
    process: { command: [sleep, '100'] }
    probes:
      alive: { process: {} }
      primary: { process: {}, interval: 2m }
    actions:
";

#[test]
fn verify_green_checks_and_breaker_reach_the_engine() {
    let text = format!(
        "{BASE}      reload:
        http: {{ url: 'http://127.0.0.1:1/reload', method: POST }}
        revert: {{ action: previous, after: 1h, green_checks: 3, probe: primary }}
        verify: {{ window: 30s, max_latency_ratio: 1.5, min_samples: 4 }}
      previous:
        http: {{ url: 'http://127.0.0.1:1/previous', method: POST }}
governance:
  breaker: {{ failures: 2, cooldown: 30s }}
"
    );
    let c = parse("c.yaml", &text).unwrap();
    let svc = &c.engine.services[0];
    let reload = svc.actions.iter().find(|a| a.name == "reload").unwrap();
    let v = reload.verify.clone().unwrap();
    assert_eq!(v.window, Some(Duration::from_secs(30)));
    assert_eq!(v.max_latency_ratio, 1.5);
    assert_eq!(v.min_samples, 4);
    assert_eq!(v.better_latency_ratio, 0.8);
    let r = reload.revert.clone().unwrap();
    assert_eq!(r.green_checks, Some(3));
    assert_eq!(r.green_probe.as_deref(), Some("primary"));
    let previous = svc.actions.iter().find(|a| a.name == "previous").unwrap();
    assert!(previous.verify.is_none());
    assert_eq!(c.engine.governance.breaker.failures, 2);
    assert_eq!(
        c.engine.governance.breaker.cooldown,
        Duration::from_secs(30)
    );
}

#[test]
fn bad_verify_green_checks_and_breaker_are_located() {
    let text = format!(
        "{BASE}      reload:
        http: {{ url: 'http://127.0.0.1:1/reload', method: POST }}
        revert: {{ action: previous, after: 1h, green_checks: 0, probe: nope }}
        verify: {{ max_latency_ratio: 0.5 }}
      previous:
        http: {{ url: 'http://127.0.0.1:1/previous', method: POST }}
governance:
  breaker: {{ failures: 0 }}
"
    );
    let e = parse("c.yaml", &text).unwrap_err().to_string();
    for want in [
        "c.yaml:10:",
        "revert.green_checks must be at least 1",
        "revert.probe names undefined probe `nope`",
        "c.yaml:11:",
        "verify needs window > 0, max_latency_ratio >= 1",
        "c.yaml:15:",
        "breaker.failures and breaker.cooldown must be above zero",
    ] {
        assert!(e.contains(want), "missing `{want}` in:\n{e}");
    }
    let unknown = parse(
        "c.yaml",
        &format!(
            "{BASE}      reload:
        http: {{ url: 'http://127.0.0.1:1/reload' }}
        verify: {{ windw: 5s }}
"
        ),
    )
    .unwrap_err()
    .to_string();
    assert!(
        unknown.contains("c.yaml:10:") && unknown.contains("windw"),
        "{unknown}"
    );
}

/// `signal:` sends a signal to the supervised process: kind `signal`,
/// class `reload_config` (a change, verified against the baseline) unless
/// governance says otherwise; it needs a `process:` and a signal name.
#[test]
fn a_signal_action_is_a_reload_of_the_supervised_process() {
    let text = format!(
        "{BASE}      reload: {{ signal: {{ signal: SIGHUP }}, revert: {{ action: restart, after: 1h }} }}
      restart: {{ restart: {{}} }}
"
    );
    let c = parse("c.yaml", &text).unwrap();
    let svc = &c.engine.services[0];
    let reload = svc.actions.iter().find(|a| a.name == "reload").unwrap();
    assert_eq!(reload.kind, medic_core::ActionKind::Signal);
    let r = medic_core::ResolvedAction::of(reload, None);
    assert_eq!(r.class, medic_core::ActionClass::ReloadConfig);
    assert_eq!(r.class.verification(), medic_core::Verification::Change);
    assert_eq!(
        c.services[0].actions["reload"],
        medic_config::ActionExec::Signal {
            signal: "SIGHUP".into()
        }
    );
    let bad = parse(
        "c.yaml",
        "services:
  web:
    probes:
      h: { http: { url: 'http://127.0.0.1:1/' } }
    actions:
      reload: { signal: { signal: hup } }
",
    )
    .unwrap_err()
    .to_string();
    assert!(
        bad.contains("signal needs the service's `process:` section")
            && bad.contains("c.yaml:6:")
            && bad.contains("unknown signal `hup`"),
        "{bad}"
    );
}
