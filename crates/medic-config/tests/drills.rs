#![allow(clippy::unwrap_used, clippy::expect_used)]
use std::time::Duration;

use medic_config::parse;

const BASE: &str = "services:
  web:
    process: { command: [sleep, '100'] }
    probes:
      alive: { process: {} }
    actions:
      restart: { restart: {} }
      crash: { http: { url: 'http://127.0.0.1:1/fault/crash', method: POST }, risk: low }
";

#[test]
fn drills_reach_the_config_and_windows_bound_them() {
    let text = format!(
        "{BASE}drills:
  windows:
    - {{ name: game-day, schedule: '0 10 * * TUE', duration: 2h }}
  every: 30m
  timeout: 90s
  list:
    web-crash: {{ service: web, fault: kill, inject: crash }}
"
    );
    let cfg = parse("d.yaml", &text).unwrap();
    let d = &cfg.drills;
    assert_eq!(d.every, Some(Duration::from_secs(1800)));
    assert_eq!(d.timeout, Duration::from_secs(90));
    assert_eq!(d.get("web-crash").unwrap().inject, "crash");
    // Tuesday 2026-11-24 10:30 UTC is inside, 12:30 and Wednesday are not.
    let tue_1030 = 1_795_516_200_000;
    assert!(d.in_window(tue_1030));
    assert!(!d.in_window(tue_1030 + 2 * 3_600_000));
    assert!(!d.in_window(tue_1030 + 24 * 3_600_000));
}

#[test]
fn no_drills_section_means_no_window() {
    let cfg = parse("d.yaml", BASE).unwrap();
    assert!(cfg.drills.drills.is_empty());
    assert!(!cfg.drills.in_window(1_795_516_200_000));
    assert_eq!(cfg.drills.timeout, medic_config::DEFAULT_DRILL_TIMEOUT);
}

#[test]
fn a_drill_naming_an_unknown_service_or_action_is_reported_with_its_place() {
    let text = format!(
        "{BASE}drills:
  list:
    a: {{ service: nope, fault: kill, inject: crash }}
    b: {{ service: web, fault: kill, inject: missing }}
"
    );
    let e = parse("d.yaml", &text).unwrap_err().to_string();
    assert!(
        e.contains("d.yaml:11:") && e.contains("undefined service `nope`"),
        "{e}"
    );
    assert!(
        e.contains("d.yaml:12:") && e.contains("no action `missing`"),
        "{e}"
    );
}
