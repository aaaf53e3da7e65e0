//! `docker:` actions and probes: parsed into their typed form, and every
//! problem located at FILE:LINE:COL.
#![allow(clippy::unwrap_used, clippy::expect_used)]
use std::time::Duration;

use medic_config::{parse, ActionExec, DockerOp, ProbeKind};

const GOOD: &str = r#"services:
  web:
    probes:
      container: { docker: { label: "medic.service=web", timeout: 3s } }
    actions:
      restart: { docker: { op: restart, label: "medic.service=web" } }
      reload: { docker: { op: kill, signal: SIGHUP, label: "medic.service=web", grace: 2s, timeout: 5s } }
    remediate:
      - when: { probe: container }
        action: restart
"#;

#[test]
fn docker_actions_and_probes_parse_with_defaults() {
    let cfg = parse("m.yaml", GOOD).unwrap();
    let web = &cfg.services[0];
    assert_eq!(
        web.probes[0].kind,
        ProbeKind::Docker {
            label: "medic.service=web".into()
        }
    );
    assert_eq!(web.probes[0].timeout, Duration::from_secs(3));
    assert_eq!(
        web.actions["restart"],
        ActionExec::Docker {
            op: DockerOp::Restart,
            label: "medic.service=web".into(),
            grace: Duration::from_secs(10),
            timeout: Duration::from_secs(60),
        }
    );
    assert_eq!(
        web.actions["reload"],
        ActionExec::Docker {
            op: DockerOp::Kill {
                signal: "SIGHUP".into()
            },
            label: "medic.service=web".into(),
            grace: Duration::from_secs(2),
            timeout: Duration::from_secs(5),
        }
    );
}

#[test]
fn bad_docker_fields_are_located() {
    let bad_op = GOOD.replace("op: restart", "op: reboot");
    let e = parse("m.yaml", &bad_op).unwrap_err().to_string();
    assert!(e.contains("m.yaml:6:32: unknown docker op `reboot`"), "{e}");
    let bad_signal = GOOD.replace("SIGHUP", "hup");
    let e = parse("m.yaml", &bad_signal).unwrap_err().to_string();
    assert!(e.contains("m.yaml:7:45: bad signal `hup`"), "{e}");
    let stray_signal = GOOD.replace("op: restart,", "op: restart, signal: SIGTERM,");
    let e = parse("m.yaml", &stray_signal).unwrap_err().to_string();
    assert!(e.contains("signal is only used by op: kill"), "{e}");
    let empty_label = GOOD.replace(
        r#"docker: { label: "medic.service=web""#,
        r#"docker: { label: """#,
    );
    let e = parse("m.yaml", &empty_label).unwrap_err().to_string();
    assert!(
        e.contains("m.yaml:4:37: label must be `key` or `key=value`"),
        "{e}"
    );
    let two = GOOD.replace(
        "restart: { docker:",
        "restart: { exec: { command: [true] }, docker:",
    );
    let e = parse("m.yaml", &two).unwrap_err().to_string();
    assert!(
        e.contains(
            "exactly one of restart, signal, exec, http, docker, systemd or kubernetes is required (found 2)"
        ),
        "{e}"
    );
}

#[test]
fn systemd_actions_parse_and_bad_units_are_located() {
    let text = r#"services:
  web:
    probes: { active: { exec: { command: [systemctl, is-active, web.service] } } }
    actions:
      bounce: { systemd: { op: restart, unit: web.service } }
      reload: { systemd: { op: reload, unit: "app@1.service", user: true, timeout: 20s } }
"#;
    let cfg = medic_config::parse("m.yaml", text).unwrap();
    let web = &cfg.services[0];
    assert_eq!(
        web.actions["bounce"],
        ActionExec::Systemd {
            op: medic_config::SystemdOp::Restart,
            unit: "web.service".into(),
            user: false,
            timeout: Duration::from_secs(90),
        }
    );
    assert_eq!(
        web.actions["reload"],
        ActionExec::Systemd {
            op: medic_config::SystemdOp::Reload,
            unit: "app@1.service".into(),
            user: true,
            timeout: Duration::from_secs(20),
        }
    );
    let e = parse(
        "m.yaml",
        &text.replace("unit: web.service", "unit: \"--force\""),
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("m.yaml:5:47: invalid unit name `--force`"),
        "{e}"
    );
    let e = parse("m.yaml", &text.replace("op: reload", "op: kick"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("m.yaml:6:32: unknown systemd op `kick`"), "{e}");
}
