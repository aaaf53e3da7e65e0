#![allow(clippy::unwrap_used, clippy::expect_used)]
//! A tiny scenario language for driving the engine in tests.
//!
//! One input per line: `<time> <verb> ...` where time is like `1s`, `1500ms`, `5m`.
//! - `probe <svc> <probe> ok [<latency>]` / `probe <svc> <probe> fail <exited|refused|timeout|500|body|exec>`
//! - `outcome <n> ok` / `outcome <n> fail` (n = action id number)
//! - `tick` (handle_timeout)
//! - `mode <mode> [<svc>]`, `resolve <incident-id>`, `enable <svc>`
//!
//! The trace renders every command except incident snapshots, plus phase changes.
#![allow(dead_code)]
use std::time::Duration;

use medic_core::*;

pub fn dur(s: &str) -> Duration {
    if let Some(v) = s.strip_suffix("ms") {
        Duration::from_millis(v.parse().unwrap())
    } else if let Some(v) = s.strip_suffix('s') {
        Duration::from_millis((v.parse::<f64>().unwrap() * 1000.0) as u64)
    } else if let Some(v) = s.strip_suffix('m') {
        Duration::from_secs(v.parse::<u64>().unwrap() * 60)
    } else if let Some(v) = s.strip_suffix('h') {
        Duration::from_secs(v.parse::<u64>().unwrap() * 3600)
    } else {
        panic!("bad duration {s}")
    }
}

pub fn web_service(policy: ServicePolicy) -> ServiceSpec {
    ServiceSpec {
        name: "web".into(),
        mode: None,
        probes: vec![ProbeSpec {
            name: "healthz".into(),
            failure: FailureRule {
                consecutive: 3,
                within: Duration::from_secs(15 * 60),
            },
            latency: Some(LatencyRule {
                over: Duration::from_secs(1),
                consecutive: 2,
            }),
            recovery: RecoveryRule { consecutive: 2 },
        }],
        actions: vec![
            ActionSpec {
                name: "restart".into(),
                kind: ActionKind::Restart,
                risk: Risk::Medium,
                revert: None,
            },
            ActionSpec {
                name: "shed".into(),
                kind: ActionKind::Http,
                risk: Risk::Low,
                revert: Some(RevertSpec {
                    action: "unshed".into(),
                    after: Duration::from_secs(10),
                }),
            },
            ActionSpec {
                name: "unshed".into(),
                kind: ActionKind::Http,
                risk: Risk::Low,
                revert: None,
            },
        ],
        remediations: vec![
            Remediation {
                probe: "healthz".into(),
                condition: Condition::Failing,
                action: "restart".into(),
            },
            Remediation {
                probe: "healthz".into(),
                condition: Condition::Slow,
                action: "shed".into(),
            },
        ],
        policy,
    }
}

pub fn policy() -> ServicePolicy {
    ServicePolicy {
        verify_window: Duration::from_secs(30),
        ..ServicePolicy::default()
    }
}

pub fn engine(mode: Mode, policy: ServicePolicy) -> Engine {
    Engine::new(
        EngineConfig {
            seed: 42,
            instance: "t".into(),
            mode,
            services: vec![web_service(policy)],
            max_timeline: 50,
            ..EngineConfig::default()
        },
        MonoTime::ZERO,
    )
}

fn failure(s: &str) -> ProbeFailure {
    match s {
        "exited" => ProbeFailure::Exited,
        "refused" => ProbeFailure::Refused,
        "timeout" => ProbeFailure::Timeout,
        "body" => ProbeFailure::BodyMismatch,
        "exec" => ProbeFailure::ExecFailed(Some(1)),
        n => ProbeFailure::BadStatus(n.parse().unwrap()),
    }
}

pub fn parse_line(line: &str) -> (MonoTime, Option<Input>) {
    let w: Vec<&str> = line.split_whitespace().collect();
    let at = MonoTime::ZERO.plus(dur(w[0]));
    let input = match w[1] {
        "probe" => {
            let ok = w[4] == "ok";
            Some(Input::Probe(ProbeReport {
                service: w[2].into(),
                probe: w[3].into(),
                ok,
                latency: if ok && w.len() > 5 {
                    dur(w[5])
                } else {
                    Duration::from_millis(5)
                },
                failure: if ok { None } else { Some(failure(w[5])) },
                detail: String::new(),
            }))
        }
        "outcome" => Some(Input::ActionOutcome {
            id: ActionId(w[2].parse().unwrap()),
            result: if w[3] == "ok" {
                Ok("done".into())
            } else {
                Err(ActionFailure {
                    kind: ActionFailureKind::NonZeroExit,
                    message: "exit 1".into(),
                })
            },
        }),
        "mode" => Some(Input::Operator(OperatorCommand::SetMode {
            service: w.get(3).map(|s| s.to_string()),
            mode: w[2].parse().unwrap(),
            by: "test".into(),
        })),
        "resolve" => Some(Input::Operator(OperatorCommand::ResolveIncident {
            id: w[2].into(),
            by: "test".into(),
            reason: "fixed by hand".into(),
        })),
        "enable" => Some(Input::Operator(OperatorCommand::EnableAutoheal {
            service: w[2].into(),
            by: "test".into(),
        })),
        "tick" => None,
        other => panic!("unknown verb {other}"),
    };
    (at, input)
}

pub fn render(cmd: &Command) -> Option<String> {
    match cmd {
        Command::Audit(a) => {
            let extra = ["verdict", "outcome", "status", "attempt"]
                .iter()
                .filter_map(|k| a.field(k).map(|v| format!(" {k}={v}")))
                .collect::<String>();
            Some(format!("audit {}{extra}", a.kind))
        }
        Command::RunAction(r) => Some(format!(
            "run {} {} {} attempt={}",
            r.id, r.service, r.action, r.attempt
        )),
        Command::Notify(n) => Some(format!("notify {} {}", n.severity.as_str(), n.title)),
        Command::IncidentChanged(_) => None,
        Command::CancelAction { id, .. } => Some(format!("cancel {id}")),
    }
}

/// Run a script and return the rendered trace.
pub fn run(mut e: Engine, script: &str) -> String {
    let mut out = String::new();
    let mut phase = e.phase("web");
    for line in script.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let (at, input) = parse_line(line);
        match input {
            Some(i) => e.handle_input(at, i),
            None => e.handle_timeout(at),
        }
        while let Some(c) = e.poll_command() {
            if let Some(s) = render(&c) {
                out.push_str(&format!("{at} {s}\n"));
            }
        }
        let p = e.phase("web");
        if p != phase {
            out.push_str(&format!(
                "{at} phase {}\n",
                p.map(|p| p.as_str()).unwrap_or("-")
            ));
            phase = p;
        }
    }
    out
}

#[track_caller]
pub fn check(e: Engine, script: &str, expect: &str) {
    let got = run(e, script);
    let want: String = expect
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(|l| format!("{l}\n"))
        .collect();
    assert_eq!(got, want, "\n--- got ---\n{got}--- want ---\n{want}");
}
