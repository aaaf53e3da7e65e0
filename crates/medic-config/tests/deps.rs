//! `depends_on`: the dependency graph, its errors with FILE:LINE:COL.
#![allow(clippy::unwrap_used, clippy::expect_used)]
use medic_config::{parse, DepKind};

fn svc(name: &str, deps: &str) -> String {
    format!(
        "  {name}:\n    probes:\n      hz:\n        http: {{ url: http://127.0.0.1:1/healthz }}\n{deps}"
    )
}

fn cfg(parts: &[String]) -> String {
    format!("services:\n{}", parts.concat())
}

#[test]
fn names_and_kinds_become_edges() {
    let text = cfg(&[
        svc("web", "    depends_on: [api]\n"),
        svc(
            "api",
            "    depends_on:\n      - { service: db, kind: database }\n      - { service: jobs, kind: queue }\n",
        ),
        svc("db", ""),
        svc("jobs", ""),
    ]);
    let c = parse("m.yaml", &text).unwrap();
    let edges: Vec<(&str, &str, DepKind)> = c
        .dependencies
        .iter()
        .map(|d| (d.from.as_str(), d.to.as_str(), d.kind))
        .collect();
    assert_eq!(
        edges,
        vec![
            ("api", "db", DepKind::Database),
            ("api", "jobs", DepKind::Queue),
            ("web", "api", DepKind::Sync),
        ]
    );
}

#[test]
fn unknown_service_is_located() {
    let text = cfg(&[svc("web", "    depends_on: [api, dbb]\n"), svc("api", "")]);
    let e = parse("m.yaml", &text).unwrap_err().to_string();
    assert!(
        e.starts_with("m.yaml:6:23: service web: depends_on names unknown service `dbb`"),
        "{e}"
    );
}

#[test]
fn unknown_kind_is_located() {
    let text = cfg(&[
        svc(
            "web",
            "    depends_on:\n      - { service: api, kind: rpc }\n",
        ),
        svc("api", ""),
    ]);
    let e = parse("m.yaml", &text).unwrap_err().to_string();
    assert!(
        e.starts_with("m.yaml:7:9: service web: depends_on `api`: unknown kind `rpc`"),
        "{e}"
    );
}

#[test]
fn cycles_are_rejected_with_their_members() {
    let text = cfg(&[
        svc("a", "    depends_on: [b]\n"),
        svc("b", "    depends_on: [c]\n"),
        svc("c", "    depends_on: [a]\n"),
        svc("d", "    depends_on: [a]\n"),
    ]);
    let e = parse("m.yaml", &text).unwrap_err().to_string();
    assert!(
        e.starts_with("m.yaml:6:18: depends_on forms a cycle between services: a, b, c"),
        "{e}"
    );
    assert_eq!(e.lines().count(), 1, "{e}");
}

#[test]
fn self_and_duplicate_dependencies_are_rejected() {
    let text = cfg(&[svc("a", "    depends_on: [a, b, b]\n"), svc("b", "")]);
    let e = parse("m.yaml", &text).unwrap_err().to_string();
    assert!(
        e.contains("m.yaml:6:18: service a: depends_on names itself"),
        "{e}"
    );
    assert!(
        e.contains("m.yaml:6:24: service a: depends_on names `b` twice"),
        "{e}"
    );
}

#[test]
fn autonomy_bands_are_read_and_checked() {
    let base = cfg(&[svc("web", "")]);
    let c = parse(
        "m.yaml",
        &format!("{base}governance:\n  autonomy: {{ act_above: 95, armed_from: 75, approval_from: 40, armed_verify_factor: 3 }}\n"),
    )
    .unwrap();
    let a = &c.engine.governance.autonomy;
    assert_eq!(
        (a.act, a.armed, a.approve, a.armed_verify_factor),
        (95, 75, 40, 3)
    );
    let d = parse("m.yaml", &base).unwrap();
    assert_eq!(
        d.engine.governance.autonomy,
        medic_core::AutonomyBands::default()
    );
    let e = parse(
        "m.yaml",
        &format!("{base}governance:\n  autonomy: {{ act_above: 60, armed_from: 75 }}\n"),
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.starts_with("m.yaml:7:13: autonomy bands must satisfy"),
        "{e}"
    );
}
