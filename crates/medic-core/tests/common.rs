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
        startup: StartupSpec {
            grace: Duration::ZERO,
        },
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
            event: false,
        }],
        actions: vec![
            ActionSpec {
                name: "restart".into(),
                kind: ActionKind::Restart,
                risk: Some(Risk::Medium),
                revert: None,
                verify: None,
            },
            ActionSpec {
                name: "shed".into(),
                kind: ActionKind::Http,
                risk: Some(Risk::Low),
                revert: Some(RevertSpec {
                    action: "unshed".into(),
                    after: Duration::from_secs(10),
                    green_checks: None,
                    green_probe: None,
                }),
                verify: None,
            },
            ActionSpec {
                name: "unshed".into(),
                kind: ActionKind::Http,
                risk: Some(Risk::Low),
                revert: None,
                verify: None,
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
    engine_with(mode, policy, GovernanceConfig::default())
}

pub fn engine_with(mode: Mode, policy: ServicePolicy, governance: GovernanceConfig) -> Engine {
    engine_of(42, mode, vec![web_service(policy)], governance)
}

/// An engine as the tests build one: instance `t`, a 50-entry timeline,
/// started at time zero, with this seed, mode, services and governance.
pub fn engine_of(
    seed: u64,
    mode: Mode,
    services: Vec<ServiceSpec>,
    governance: GovernanceConfig,
) -> Engine {
    Engine::new(
        EngineConfig {
            seed,
            instance: "t".into(),
            mode,
            services,
            max_timeline: 50,
            governance,
        },
        MonoTime::ZERO,
    )
}

fn opt(s: &str) -> Option<String> {
    (s != "*").then(|| s.to_string())
}

fn kind(s: &str) -> Option<ActionKind> {
    match s {
        "restart" => Some(ActionKind::Restart),
        "http" => Some(ActionKind::Http),
        "exec" => Some(ActionKind::Exec),
        _ => None,
    }
}

fn failure(s: &str) -> ProbeFailure {
    match s {
        "exited" => ProbeFailure::Exited,
        "refused" => ProbeFailure::Refused,
        "timeout" => ProbeFailure::Timeout,
        "body" => ProbeFailure::BodyMismatch,
        "exec" => ProbeFailure::ExecFailed(Some(1)),
        "other" => ProbeFailure::Other,
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
        "mode" => Some(op_input(
            "test".into(),
            OperatorCommand::SetMode {
                service: w.get(3).map(|s| s.to_string()),
                mode: w[2].parse().unwrap(),
            },
        )),
        "resolve" => Some(op_input(
            "test".into(),
            OperatorCommand::ResolveIncident {
                id: w[2].into(),
                reason: "fixed by hand".into(),
            },
        )),
        "enable" => Some(op_input(
            "test".into(),
            OperatorCommand::EnableAutoheal {
                service: w[2].into(),
            },
        )),
        "tick" => None,
        // started <svc>: the driver started the service's process
        "started" => Some(Input::ProcessStarted {
            service: w[2].into(),
        }),
        // pause <svc|*> <kind|*> <dur|->
        "pause" => Some(op_input(
            "op".into(),
            OperatorCommand::Pause {
                service: opt(w[2]),
                kind: kind(w[3]),
                duration: (w[4] != "-").then(|| dur(w[4])),
                reason: "test".into(),
            },
        )),
        "resume" => Some(op_input(
            "op".into(),
            OperatorCommand::Resume {
                service: opt(w[2]),
                kind: kind(w[3]),
            },
        )),
        "approve" => Some(op_input(
            w[3].into(),
            OperatorCommand::Approve { id: w[2].into() },
        )),
        "reject" => Some(op_input(
            w[3].into(),
            OperatorCommand::Reject {
                id: w[2].into(),
                reason: "not now".into(),
            },
        )),
        // force <svc> <action> [reason...]
        "force" => Some(op_input(
            "op".into(),
            OperatorCommand::ForceAction {
                service: w[2].into(),
                action: w[3].into(),
                reason: w[4..].join(" "),
            },
        )),
        "cancel" => Some(op_input(
            "op".into(),
            OperatorCommand::CancelAction {
                id: ActionId(w[2].parse().unwrap()),
                reason: "test".into(),
            },
        )),
        // wall <unix seconds>
        "wall" => Some(Input::WallClock {
            unix_ms: w[2].parse::<i64>().unwrap() * 1000,
            utc_offset_minutes: None,
        }),
        // freeze <start unix s> <end unix s>
        "freeze" => Some(Input::FreezeWindows(vec![FreezeWindow {
            name: "f".into(),
            start_unix_ms: w[2].parse::<i64>().unwrap() * 1000,
            end_unix_ms: w[3].parse::<i64>().unwrap() * 1000,
            services: None,
        }])),
        // signals <svc> <instances> <error budget> <headroom>
        "signals" => Some(Input::Signals(ServiceSignals {
            service: w[2].into(),
            instances: Some(w[3].parse().unwrap()),
            error_budget_remaining: Some(w[4].parse().unwrap()),
            capacity_headroom: Some(w[5].parse().unwrap()),
        })),
        // diagnose <svc> <confidence> <victims,comma-separated | ->
        "diagnose" => Some(Input::Diagnosis(DiagnosisReport {
            hypotheses: vec![Hypothesis {
                service: w[2].into(),
                signal: "latency".into(),
                pattern: "dependency_slow".into(),
                confidence: w[3].parse().unwrap(),
                prior: 0.9,
                evidence: 1.0,
                learned: 0.9,
                victims: w[4]
                    .split(',')
                    .filter(|v| *v != "-")
                    .map(String::from)
                    .collect(),
                evidence_text: String::new(),
            }],
        })),
        "undiagnose" => Some(Input::Diagnosis(DiagnosisReport::default())),
        // release <scope:target> [reason...]: an admin force-releases a lock
        "release" => Some(op_input(
            "admin".into(),
            OperatorCommand::ReleaseLock {
                key: LockKey::parse(w[2]).unwrap(),
                reason: w[3..].join(" "),
            },
        )),
        other => panic!("unknown verb {other}"),
    };
    (at, input)
}

pub fn op_input(by: String, cmd: OperatorCommand) -> Input {
    Input::Operator(Actor::new(by, Role::Admin), cmd)
}

/// The few notice fields the traces show.
pub fn notice_field(n: &Notice, key: &str) -> Option<String> {
    match (n, key) {
        (Notice::Decision { verdict, .. }, "verdict") => Some(verdict.as_str().into()),
        (Notice::Decision { reason_code, .. }, "reason_code")
        | (Notice::RevertDropped { reason_code, .. }, "reason_code") => {
            reason_code.map(|c| c.as_str().into())
        }
        (Notice::IncidentEscalated { reason_code, .. }, "reason_code")
        | (Notice::HealRetrying { reason_code, .. }, "reason_code")
        | (Notice::AutohealDisabled { reason_code, .. }, "reason_code")
        | (Notice::RevertDeferred { reason_code, .. }, "reason_code")
        | (Notice::ApprovalRequested { reason_code, .. }, "reason_code") => {
            Some(reason_code.as_str().into())
        }
        (Notice::MassIncidentLatched { .. }, "reason_code") => Some("mass_incident".into()),
        (Notice::VerifyJudged { reason_code, .. }, "reason_code") => {
            reason_code.map(|c| c.as_str().into())
        }
        (Notice::VerifyJudged { judgement, .. }, "judgement") => Some(judgement.to_string()),
        (Notice::BreakerChanged { to, .. }, "to") => Some(to.to_string()),
        (Notice::RootCause { band, .. }, "reason_code") => Some(band.code().as_str().into()),
        (Notice::AutomationPaused { .. }, "reason_code") => Some("paused".into()),
        (Notice::OperatorRejected { error, .. }, "reason_code") => Some(error.as_str().into()),
        (Notice::IncidentResolved { outcome, .. }, "outcome") => Some(outcome.as_str().into()),
        (Notice::ActionOutcome { status, .. }, "status") => Some(status.as_str().into()),
        (Notice::ActionIntent { attempt, .. }, "attempt") => Some(attempt.to_string()),
        (Notice::ActionIntent { stage, .. }, "stage")
        | (Notice::ActionOutcome { stage, .. }, "stage") => Some(stage.as_str().into()),
        (Notice::ModeChanged { by, .. }, "by")
        | (Notice::AutomationPaused { by, .. }, "by")
        | (Notice::AutomationResumed { by, .. }, "by")
        | (Notice::ApprovalApproved { by, .. }, "by")
        | (Notice::ApprovalRejected { by, .. }, "by")
        | (Notice::Override { by, .. }, "by")
        | (Notice::ActionCancelRequested { by, .. }, "by")
        | (Notice::AutohealEnabled { by, .. }, "by")
        | (Notice::LockForceReleased { by, .. }, "by")
        | (Notice::OperatorRejected { by, .. }, "by")
        | (Notice::IncidentResolvedByOperator { by, .. }, "by") => Some(by.clone()),
        (Notice::MassIncidentLatched { .. }, "by") => Some("medic".into()),
        _ => None,
    }
}

pub fn render_notice(n: &Notice, verbose: bool) -> String {
    let fields: &[&str] = if verbose {
        &[
            "verdict",
            "reason_code",
            "outcome",
            "status",
            "attempt",
            "stage",
            "by",
            "judgement",
            "to",
        ]
    } else {
        &["verdict", "outcome", "status", "attempt"]
    };
    let extra = fields
        .iter()
        .filter_map(|k| notice_field(n, k).map(|v| format!(" {k}={v}")))
        .collect::<String>();
    format!("audit {}{extra}", n.kind().as_str())
}

pub fn render(cmd: &Command, _verbose: bool) -> Option<String> {
    match cmd {
        Command::RunAction(r) => Some(format!(
            "run {} {} {} attempt={}",
            r.id, r.service, r.action, r.attempt
        )),
        Command::Notify(n) => Some(format!("notify {} {}", n.severity.as_str(), n.title)),
        Command::IncidentChanged(_) => None,
        Command::CancelAction { id, .. } => Some(format!("cancel {id}")),
        Command::CollectCanary(w) => {
            Some(format!("collect-canary {} stage={}", w.service, w.stage))
        }
    }
}

/// Run a script and return the rendered trace.
pub fn run(e: Engine, script: &str) -> String {
    run_with(e, script, false)
}

/// The script's lines, trimmed, without blank ones.
fn script_lines(script: &str) -> impl Iterator<Item = &str> {
    script.lines().map(str::trim).filter(|l| !l.is_empty())
}

/// Apply one script line to the engine; returns its time.
pub fn step(e: &mut Engine, line: &str) -> MonoTime {
    let (at, input) = parse_line(line);
    match input {
        Some(i) => e.handle_input(at, i),
        None => e.handle_timeout(at),
    }
    at
}

/// Apply every line of a script, leaving the engine's output undrained.
pub fn feed(e: &mut Engine, script: &str) {
    for line in script_lines(script) {
        step(e, line);
    }
}

pub fn run_with(mut e: Engine, script: &str, verbose: bool) -> String {
    let mut out = String::new();
    let mut phase = e.phase("web");
    for line in script_lines(script) {
        let at = step(&mut e, line);
        while let Some(n) = e.poll_notice() {
            out.push_str(&format!("{at} {}\n", render_notice(&n, verbose)));
        }
        while let Some(c) = e.poll_command() {
            if let Some(s) = render(&c, verbose) {
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
    check_with(e, script, expect, false)
}

/// Like [`check`], rendering reason codes, stages and operators too.
#[track_caller]
pub fn check_v(e: Engine, script: &str, expect: &str) {
    check_with(e, script, expect, true)
}

#[track_caller]
fn check_with(e: Engine, script: &str, expect: &str, verbose: bool) {
    let got = run_with(e, script, verbose);
    let want: String = expect
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(|l| format!("{l}\n"))
        .collect();
    assert_eq!(got, want, "\n--- got ---\n{got}--- want ---\n{want}");
}
