#![allow(clippy::unwrap_used, clippy::expect_used)]
use std::time::Duration;

use medic_config::parse;
use medic_core::ActionClass;

const BASE: &str = "services:
  web:
    process: { command: [sleep, '100'] }
    probes:
      alive: { process: {} }
    actions:
      restart: { restart: {} }
      failover: { exec: { command: [true] }, risk: high }
";

#[test]
fn governance_section_reaches_the_engine() {
    let text = format!(
        "{BASE}governance:
  limits: {{ max_concurrent_actions: 2, max_actions_per_hour: 7, max_consecutive_failures: 4 }}
  gates: {{ min_error_budget_ratio: 0.05, max_incidents_per_hour: 9, human_score: 0.6 }}
  approvals: {{ expiry: 10m, two_person_high: true }}
  business_hours: {{ days: [mon, tue], hours: '08:00-17:00', peaks: ['12:00-13:00'] }}
  canary_bake: 45s
  freeze_windows:
    - {{ name: weekend, schedule: '0 18 * * FRI', duration: 62h, timezone: Europe/Berlin, services: [web] }}
  services:
    web:
      criticality: 0.9
      instances: 4
      actions:
        failover: {{ class: database_failover, change_size: 0.8, removes_capacity: true }}
"
    );
    let cfg = parse("g.yaml", &text).unwrap();
    let g = &cfg.engine.governance;
    assert_eq!(g.limits.max_concurrent, 2);
    assert_eq!(g.limits.max_actions_per_hour, 7);
    assert_eq!(g.limits.max_consecutive_failures, 4);
    assert_eq!(g.gates.min_error_budget, 0.05);
    assert_eq!(g.gates.max_incidents_per_hour, 9);
    assert_eq!(g.gates.human_score, 0.6);
    assert_eq!(g.approvals.expiry, Duration::from_secs(600));
    assert!(g.approvals.two_person_high);
    assert_eq!(
        g.timing.business_days,
        [true, true, false, false, false, false, false]
    );
    assert_eq!(g.timing.business_hours, (480, 1020));
    assert_eq!(g.timing.peaks, vec![(720, 780)]);
    assert_eq!(g.canary_bake, Duration::from_secs(45));
    let web = &g.services["web"];
    assert_eq!(web.criticality, 0.9);
    assert_eq!(web.instances, 4);
    assert_eq!(
        web.actions["failover"].class,
        Some(ActionClass::DatabaseFailover)
    );
    assert_eq!(web.actions["failover"].removes_capacity, Some(true));
    assert_eq!(cfg.freeze_windows.len(), 1);
}

#[test]
fn freeze_windows_expand_in_their_timezone() {
    let text = format!(
        "{BASE}governance:
  freeze_windows:
    - {{ name: weekend, schedule: '0 18 * * FRI', duration: 62h, timezone: Europe/Berlin }}
"
    );
    let cfg = parse("g.yaml", &text).unwrap();
    let f = &cfg.freeze_windows[0];
    // Saturday 2026-11-21 12:00 UTC is inside Friday 18:00 CET (17:00 UTC) + 62h.
    let sat_noon = 1_763_726_400_000 + 365 * 86_400_000; // 2026-11-21T12:00:00Z
    let ws = f.windows(sat_noon, Duration::from_secs(8 * 86_400));
    assert!(!ws.is_empty());
    let first = &ws[0];
    assert!(
        first.start_unix_ms <= sat_noon && sat_noon < first.end_unix_ms,
        "{first:?}"
    );
    // Friday 18:00 in Berlin (CET, UTC+1) is 17:00 UTC.
    assert_eq!(first.start_unix_ms % 86_400_000, 17 * 3_600_000);
    assert_eq!(first.end_unix_ms - first.start_unix_ms, 62 * 3_600_000);
    // The next one is a week later.
    assert_eq!(ws[1].start_unix_ms - first.start_unix_ms, 7 * 86_400_000);
    assert!(first.covers("web", sat_noon));
}

#[test]
fn governance_errors_are_located() {
    let text = format!(
        "{BASE}governance:
  gates: {{ max_blast_radius_ratio: 2 }}
  business_hours: {{ days: [mon, funday], hours: '18:00-09:00' }}
  freeze_windows:
    - {{ name: x, schedule: 'every friday', duration: 1h, timezone: Mars/Olympus, services: [api] }}
  services:
    db: {{ criticality: 1 }}
    web:
      actions:
        nope: {{ class: teleport }}
"
    );
    let e = parse("g.yaml", &text).unwrap_err().to_string();
    for want in [
        "max_blast_radius_ratio must be between 0 and 1",
        "unknown day `funday`",
        "invalid hours `18:00-09:00`",
        "invalid cron schedule `every friday`",
        "unknown timezone `Mars/Olympus`",
        "freeze window names undefined service `api`",
        "governance names undefined service `db`",
        "governance names undefined action `nope`",
    ] {
        assert!(e.contains(want), "missing `{want}` in:\n{e}");
    }
    assert!(e.lines().all(|l| l.starts_with("g.yaml:")), "{e}");
}

#[test]
fn freeze_windows_follow_daylight_saving_time() {
    let text = format!(
        "{BASE}governance:
  freeze_windows:
    - {{ name: morning, schedule: '0 9 * * *', duration: 1h, timezone: Europe/Berlin }}
"
    );
    let cfg = parse("g.yaml", &text).unwrap();
    // 2026-03-27T12:00:00Z; Berlin switches from CET to CEST on 2026-03-29.
    let now = 1_774_612_800_000;
    let ws = cfg.freeze_windows[0].windows(now, Duration::from_secs(4 * 86_400));
    let utc_hours: Vec<i64> = ws
        .iter()
        .map(|w| (w.start_unix_ms % 86_400_000) / 3_600_000)
        .collect();
    // 09:00 local is 08:00 UTC on the 28th (CET), 07:00 UTC from the 29th (CEST).
    assert_eq!(utc_hours, vec![8, 7, 7, 7], "{ws:?}");
}

#[test]
fn locks_section_and_depends_on_reach_the_engine() {
    let text = "services:
  web:
    probes: { up: { tcp: { address: '127.0.0.1:1' } } }
    depends_on: [db]
  db:
    probes: { up: { tcp: { address: '127.0.0.1:2' } } }
governance:
  locks: { ttl: 2m, max_wait: 30s, max_waiters: 5 }
";
    let cfg = parse("m.yaml", text).unwrap();
    let g = &cfg.engine.governance;
    assert_eq!(g.locks.ttl, Duration::from_secs(120));
    assert_eq!(g.locks.max_wait, Duration::from_secs(30));
    assert_eq!(g.locks.max_waiters, 5);
    assert!(g.topology.adjacent("db", "web"));
    // Defaults: 300 s TTL.
    let cfg = parse(
        "m.yaml",
        &text.replace(
            "  locks: { ttl: 2m, max_wait: 30s, max_waiters: 5 }\n",
            "  canary_bake: 1s\n",
        ),
    )
    .unwrap();
    assert_eq!(cfg.engine.governance.locks.ttl, Duration::from_secs(300));
    let e = parse("m.yaml", &text.replace("max_waiters: 5", "max_waiters: 0"))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("m.yaml:8:49: locks.max_waiters must be between 1 and 4096"),
        "{e}"
    );
    let e = parse("m.yaml", &text.replace("ttl: 2m", "ttl: 0s"))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("m.yaml:8:17: locks.ttl must be at least 1s"),
        "{e}"
    );
}
