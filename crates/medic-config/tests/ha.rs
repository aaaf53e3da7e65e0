#![allow(clippy::unwrap_used, clippy::expect_used)]
use std::time::Duration;

use medic_config::parse;

const BASE: &str = "services:
  web:
    probes:
      up: { http: { url: 'http://127.0.0.1:1/healthz' } }
";

#[test]
fn without_ha_there_is_one_instance() {
    assert!(parse("h.yaml", BASE).unwrap().ha.is_none());
}

#[test]
fn ha_defaults_renew_at_a_third_of_the_ttl() {
    let cfg = parse(
        "h.yaml",
        &format!("{BASE}ha:\n  etcd: ['http://127.0.0.1:2379']\n"),
    )
    .unwrap();
    let ha = cfg.ha.unwrap();
    assert_eq!(ha.etcd, vec!["http://127.0.0.1:2379".to_string()]);
    assert_eq!(ha.lease_ttl, Duration::from_secs(5));
    assert_eq!(ha.renew_every(), Duration::from_secs(5) / 3);
    assert_eq!(ha.drift_margin, Duration::from_millis(500));
    assert_eq!(ha.election, "medic/leader");
    assert_eq!(ha.prefix, "medic");
    assert_eq!(ha.member, None);
}

#[test]
fn ha_fields_are_read_and_checked_with_their_place() {
    let cfg = parse(
        "h.yaml",
        &format!(
            "{BASE}ha:\n  etcd: ['http://a:2379', 'http://b:2379']\n  election: x/lead\n  member: m1\n  lease_ttl: 3s\n  drift_margin: 200ms\n"
        ),
    )
    .unwrap();
    let ha = cfg.ha.unwrap();
    assert_eq!(ha.lease_ttl, Duration::from_secs(3));
    assert_eq!(ha.drift_margin, Duration::from_millis(200));
    assert_eq!(ha.member.as_deref(), Some("m1"));

    let e = parse(
        "h.yaml",
        &format!("{BASE}ha:\n  etcd: ['a:2379']\n  lease_ttl: 500ms\n  drift_margin: 5s\n"),
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("h.yaml:6:") && e.contains("invalid URL `a:2379`"),
        "{e}"
    );
    assert!(
        e.contains("h.yaml:7:") && e.contains("ha.lease_ttl must be at least 1s"),
        "{e}"
    );
    assert!(
        e.contains("h.yaml:8:") && e.contains("ha.drift_margin must be less than"),
        "{e}"
    );

    let e = parse("h.yaml", &format!("{BASE}ha:\n  etcd: []\n  leader: x\n"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("h.yaml:7:") && e.contains("leader"), "{e}");
}
