//! `kubernetes:` actions: parsed into their typed form, and every problem
//! located at FILE:LINE:COL.
#![allow(clippy::unwrap_used, clippy::expect_used)]
use std::path::PathBuf;
use std::time::Duration;

use medic_config::{parse, ActionExec, KubeOp};

const GOOD: &str = r#"services:
  web:
    probes: { up: { http: { url: "http://127.0.0.1:8080/healthz" } } }
    actions:
      bounce: { kubernetes: { op: rollout-restart, namespace: shop, deployment: web } }
      grow: { kubernetes: { op: scale, namespace: shop, deployment: web, replicas: 6, timeout: 2m } }
      undo: { kubernetes: { op: rollout-undo, deployment: web, kubeconfig: /etc/medic/kubeconfig, context: prod } }
      kill: { kubernetes: { op: delete-pod, namespace: shop, pod: web-7d4b9c-x2x1q } }
      drain: { kubernetes: { op: cordon, node: worker-2 } }
    remediate:
      - when: { probe: up }
        action: bounce
"#;

#[test]
fn kubernetes_actions_parse() {
    let cfg = parse("m.yaml", GOOD).unwrap();
    let a = &cfg.services[0].actions;
    let k = |op, ns: &str, target: &str, timeout| ActionExec::Kubernetes {
        op,
        namespace: ns.into(),
        target: target.into(),
        kubeconfig: None,
        context: None,
        timeout,
    };
    let five = Duration::from_secs(300);
    assert_eq!(a["bounce"], k(KubeOp::RolloutRestart, "shop", "web", five));
    assert_eq!(
        a["grow"],
        k(
            KubeOp::Scale { replicas: 6 },
            "shop",
            "web",
            Duration::from_secs(120)
        )
    );
    assert_eq!(
        a["undo"],
        ActionExec::Kubernetes {
            op: KubeOp::RolloutUndo,
            namespace: "default".into(),
            target: "web".into(),
            kubeconfig: Some(PathBuf::from("/etc/medic/kubeconfig")),
            context: Some("prod".into()),
            timeout: five,
        }
    );
    assert_eq!(
        a["kill"],
        k(KubeOp::DeletePod, "shop", "web-7d4b9c-x2x1q", five)
    );
    assert_eq!(a["drain"], k(KubeOp::Cordon, "", "worker-2", five));
    assert_eq!(
        cfg.engine.services[0].actions[0].kind,
        medic_core::ActionKind::Kubernetes
    );
}

#[test]
fn kubernetes_problems_are_located() {
    let cases = [
        (
            ("op: rollout-restart", "op: bounce"),
            "m.yaml:5:35: unknown kubernetes op `bounce` (expected rollout-restart, scale, rollout-undo, delete-pod or cordon)",
        ),
        (
            ("replicas: 6, ", ""),
            "m.yaml:6:33: op: scale needs `replicas`",
        ),
        (
            ("deployment: web } }\n      grow", "pod: web } }\n      grow"),
            "m.yaml:5:74: pod is not used by op: rollout-restart",
        ),
        (
            ("op: cordon, node: worker-2", "op: cordon, namespace: shop, node: worker-2"),
            "m.yaml:9:53: namespace is not used by op: cordon (nodes are cluster-wide)",
        ),
        (
            ("pod: web-7d4b9c-x2x1q", "pod: Web_1"),
            "m.yaml:8:67: invalid pod name `Web_1` (lowercase letters, digits, '-' and '.')",
        ),
        (
            ("op: cordon, node: worker-2", "op: cordon"),
            "m.yaml:9:34: op: cordon needs `node`",
        ),
    ];
    for ((from, to), want) in cases {
        assert!(GOOD.contains(from), "{from}");
        let e = parse("m.yaml", &GOOD.replacen(from, to, 1))
            .unwrap_err()
            .to_string();
        assert!(e.contains(want), "{from} → {to}:\n{e}");
    }
}
