//! medic-sim: deterministic simulation testing of medic's sans-IO engine.
//!
//! One `u64` seed names a whole run. Scenario `k` of seed `s` gets its own
//! PRNG; from it [`SwarmOptions::generate`] picks the scenario's *parameters*
//! (TigerBeetle-style swarm testing: service count, instances, risk mix,
//! fault and noise rates, executor failure rates and delays, operator
//! activity, clock jumps, tightened limits) and then a list of timed
//! [`Event`]s. [`run_scenario`] plays the events against the engine on a
//! simulated clock, with a simulated world that plays the probes and the
//! executor, and checks the invariants of [`check`] after every step.
//!
//! Two phases, as in TigerBeetle's VOPR: a **safety** phase with faults,
//! noise, operator commands and clock jumps, then a **liveness** phase in
//! which the world heals, noise stops, an operator resumes automation and
//! freeze windows are lifted; every incident must then close (or sit
//! escalated to a human) within a bound, with no action left in flight.
//!
//! A violating scenario is shrunk ([`shrink`]) by removing events while the
//! same invariant still fails, so the report names the shortest reproducer;
//! `medic sim --seed S --scenario K --trace` replays it exactly.
#![forbid(unsafe_code)]

pub mod check;
pub mod cli;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use medic_core::governance::PolicyFault;
use medic_core::{
    ActionClass, ActionFailure, ActionFailureKind, ActionGovernance, ActionId, ActionKind,
    ActionSpec, ActionStage, Command, Condition, Engine, EngineConfig, FailureRule, FreezeWindow,
    GovernanceConfig, Input, LatencyRule, Mode, MonoTime, OperatorCommand, ProbeFailure,
    ProbeReport, ProbeSpec, RecoveryRule, Remediation, RetryPolicy, RevertSpec, Risk,
    ServiceGovernance, ServicePolicy, ServiceSignals, ServiceSpec, SplitMix64,
};

pub use check::{Checker, Violation};

/// Mixes numbers into one well-spread u64 (SplitMix64 finaliser).
pub fn mix(a: u64, b: u64) -> u64 {
    let mut r = SplitMix64::new(a ^ b.wrapping_mul(0x9E37_79B9_7F4A_7C15).rotate_left(17));
    r.next_u64()
}

/// How big scenarios are.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Profile {
    /// Small scenarios for debug-build test runs.
    Lite,
    /// More services and longer runs.
    Full,
}

/// Per-scenario parameters, chosen from the scenario's seed.
#[derive(Clone, Debug)]
pub struct SwarmOptions {
    pub services: usize,
    pub safety_ms: u64,
    pub probe_interval_ms: u64,
    pub fault_per_hour: f64,
    pub noise: f64,
    pub exec_fail: f64,
    pub exec_delay_max_ms: u64,
    pub exec_hang: f64,
    pub heal_prob: f64,
    pub operator_per_hour: f64,
    pub clock_jumps_per_hour: f64,
    pub signals_per_hour: f64,
    pub start_mode: Mode,
    pub two_person: bool,
    pub fault: PolicyFault,
}

impl SwarmOptions {
    pub fn generate(rng: &mut SplitMix64, profile: Profile) -> SwarmOptions {
        let (max_services, max_minutes) = match profile {
            Profile::Lite => (6, 40),
            Profile::Full => (14, 120),
        };
        let pick = |rng: &mut SplitMix64, xs: &[f64]| xs[rng.below(xs.len() as u64) as usize];
        SwarmOptions {
            services: 1 + rng.below(max_services) as usize,
            safety_ms: (10 + rng.below(max_minutes - 9)) * 60_000,
            probe_interval_ms: [5_000, 10_000, 15_000, 30_000][rng.below(4) as usize],
            fault_per_hour: pick(rng, &[0.5, 2.0, 6.0, 20.0]),
            noise: pick(rng, &[0.0, 0.01, 0.05, 0.2]),
            exec_fail: pick(rng, &[0.0, 0.1, 0.3, 0.7]),
            exec_delay_max_ms: [200, 5_000, 60_000, 600_000][rng.below(4) as usize],
            exec_hang: pick(rng, &[0.0, 0.02, 0.1]),
            heal_prob: pick(rng, &[0.3, 0.8, 1.0]),
            operator_per_hour: pick(rng, &[0.0, 4.0, 20.0, 60.0]),
            clock_jumps_per_hour: pick(rng, &[0.0, 1.0, 6.0]),
            signals_per_hour: pick(rng, &[0.0, 2.0, 10.0]),
            start_mode: [
                Mode::Disabled,
                Mode::DryRun,
                Mode::Conservative,
                Mode::Aggressive,
                Mode::Aggressive,
            ][rng.below(5) as usize],
            two_person: rng.below(2) == 0,
            fault: PolicyFault::None,
        }
    }

    /// One line, printed with the seed.
    pub fn describe(&self) -> String {
        format!(
            "services={} safety={}s probe={}ms faults/h={} noise={} exec_fail={} \
             exec_delay_max={}ms hang={} heal={} ops/h={} jumps/h={} signals/h={} mode={} \
             two_person={} fault={:?}",
            self.services,
            self.safety_ms / 1000,
            self.probe_interval_ms,
            self.fault_per_hour,
            self.noise,
            self.exec_fail,
            self.exec_delay_max_ms,
            self.exec_hang,
            self.heal_prob,
            self.operator_per_hour,
            self.clock_jumps_per_hour,
            self.signals_per_hour,
            self.start_mode,
            self.two_person,
            self.fault
        )
    }
}

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum FaultKind {
    Crash,
    Errors,
    Slow,
}

/// Operator commands the simulated humans issue.
#[derive(Clone, Debug, PartialEq)]
pub enum OpEvent {
    Mode(Option<usize>, Mode),
    Pause(Option<usize>, Option<ActionKind>, Option<u64>),
    Resume(Option<usize>, Option<ActionKind>),
    /// Approve the n-th pending approval (modulo their count) as `approver`.
    Approve(usize, usize),
    Reject(usize),
    /// Cancel the n-th action in flight.
    Cancel(usize),
    Force(usize),
    /// Resolve the n-th open incident.
    Resolve(usize),
    Enable(usize),
}

#[derive(Clone, Debug, PartialEq)]
pub enum EventKind {
    Fault(usize, FaultKind),
    Heal(usize),
    Op(OpEvent),
    /// The host wall clock jumps (ms, may be negative).
    WallJump(i64),
    /// The host sleeps: no probes for this long.
    Suspend(u64),
    Signals(usize, u32, f64, f64),
    /// A freeze window from `start` (relative to now, ms) lasting `len` ms.
    Freeze(i64, u64, Option<usize>),
}

#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    pub at: u64,
    pub kind: EventKind,
}

/// A whole scenario: parameters, engine configuration and events.
#[derive(Clone, Debug)]
pub struct Scenario {
    pub seed: u64,
    pub index: u64,
    pub opts: SwarmOptions,
    pub config: EngineConfig,
    pub wall_start_ms: i64,
    pub events: Vec<Event>,
}

pub const APPROVERS: [&str; 3] = ["alice", "bob", "carol"];

fn svc_name(i: usize) -> String {
    format!("svc{i:02}")
}

fn poisson_times(rng: &mut SplitMix64, per_hour: f64, until_ms: u64) -> Vec<u64> {
    let mut out = Vec::new();
    if per_hour <= 0.0 {
        return out;
    }
    let mean_ms = 3_600_000.0 / per_hour;
    let mut t = 0.0f64;
    for _ in 0..10_000 {
        let u = rng.unit().max(1e-12);
        t += -u.ln() * mean_ms;
        if t >= until_ms as f64 {
            break;
        }
        out.push(t as u64);
    }
    out
}

impl Scenario {
    /// Scenario `index` of `seed`.
    pub fn generate(seed: u64, index: u64, profile: Profile, fault: PolicyFault) -> Scenario {
        let mut rng = SplitMix64::new(mix(seed, index));
        let mut opts = SwarmOptions::generate(&mut rng, profile);
        opts.fault = fault;
        let n = opts.services;
        let mut services = Vec::new();
        let mut gov = GovernanceConfig::default();
        for i in 0..n {
            let name = svc_name(i);
            let risk = match rng.below(20) {
                0..=6 => Risk::Low,
                7..=13 => Risk::Medium,
                14..=17 => Risk::High,
                _ => Risk::Critical,
            };
            let kind =
                [ActionKind::Restart, ActionKind::Exec, ActionKind::Http][rng.below(3) as usize];
            let class = [
                ActionClass::RestartService,
                ActionClass::ToggleFeatureFlag,
                ActionClass::Fallback,
                ActionClass::ClearCache,
                ActionClass::DatabaseFailover,
            ][rng.below(5) as usize];
            let revert = (rng.below(3) == 0).then(|| RevertSpec {
                action: "undo".into(),
                after: Duration::from_secs(10 + rng.below(110)),
            });
            let actions = vec![
                ActionSpec {
                    name: "fix".into(),
                    kind,
                    risk,
                    revert,
                },
                ActionSpec {
                    name: "undo".into(),
                    kind: ActionKind::Http,
                    risk: Risk::Low,
                    revert: None,
                },
                ActionSpec {
                    name: "shed".into(),
                    kind: ActionKind::Http,
                    risk: Risk::Low,
                    revert: Some(RevertSpec {
                        action: "unshed".into(),
                        after: Duration::from_secs(30),
                    }),
                },
                ActionSpec {
                    name: "unshed".into(),
                    kind: ActionKind::Http,
                    risk: Risk::Low,
                    revert: None,
                },
            ];
            let probe = ProbeSpec {
                name: "health".into(),
                failure: FailureRule {
                    consecutive: 2 + rng.below(2) as u32,
                    within: Duration::from_secs(15 * 60),
                },
                latency: Some(LatencyRule {
                    over: Duration::from_secs(1),
                    consecutive: 2,
                }),
                recovery: RecoveryRule {
                    consecutive: 1 + rng.below(3) as u32,
                },
            };
            let policy = ServicePolicy {
                cooldown: Duration::from_secs([0, 30, 120, 300][rng.below(4) as usize]),
                restart_budget: 1 + rng.below(4) as u32,
                budget_window: Duration::from_secs(3600),
                max_failed_heals: 2 + rng.below(3) as u32,
                failed_window: Duration::from_secs(1800),
                verify_window: Duration::from_secs(10 + rng.below(51)),
                retry: RetryPolicy {
                    base: Duration::from_millis(100 + rng.below(1900)),
                    cap: Duration::from_secs(60),
                    jitter: Duration::from_secs(1),
                    max_attempts: 1 + rng.below(5) as u32,
                },
            };
            let mode = (rng.below(5) == 0).then(|| {
                [
                    Mode::Disabled,
                    Mode::DryRun,
                    Mode::Conservative,
                    Mode::Aggressive,
                ][rng.below(4) as usize]
            });
            let mut ag = BTreeMap::new();
            ag.insert(
                "fix".to_string(),
                ActionGovernance {
                    class,
                    change_size: None,
                    removes_capacity: None,
                    canary: rng.below(2) == 0,
                },
            );
            ag.insert(
                "shed".to_string(),
                ActionGovernance {
                    class: ActionClass::RateLimit,
                    ..ActionGovernance::default()
                },
            );
            gov.services.insert(
                name.clone(),
                ServiceGovernance {
                    criticality: rng.unit(),
                    instances: 1 + rng.below(5) as u32,
                    actions: ag,
                },
            );
            services.push(ServiceSpec {
                name,
                mode,
                probes: vec![probe],
                actions,
                remediations: vec![
                    Remediation {
                        probe: "health".into(),
                        condition: Condition::Failing,
                        action: "fix".into(),
                    },
                    Remediation {
                        probe: "health".into(),
                        condition: Condition::Slow,
                        action: "shed".into(),
                    },
                ],
                policy,
            });
        }
        gov.limits.max_concurrent = 1 + rng.below(5) as u32;
        gov.limits.max_actions_per_hour = 3 + rng.below(18) as u32;
        gov.limits.feature_disables_per_hour = 1 + rng.below(5) as u32;
        gov.limits.fallbacks_per_service_per_hour = 1 + rng.below(10) as u32;
        gov.limits.max_consecutive_failures = 1 + rng.below(4) as u32;
        gov.gates.max_blast_radius = [0.2, 0.2, 0.5, 1.0][rng.below(4) as usize];
        gov.gates.max_failed_actions_per_hour = 1 + rng.below(5) as u32;
        gov.gates.max_incidents_per_hour = 3 + rng.below(20) as u32;
        gov.gates.mass_incident_services = 2 + rng.below(9) as u32;
        gov.approvals.expiry = Duration::from_secs(60 * (1 + rng.below(30)));
        gov.approvals.two_person_high = opts.two_person;
        gov.timing.utc_offset_minutes = (rng.below(25) as i32 - 12) * 60;
        gov.canary_bake = Duration::from_secs(5 + rng.below(60));
        gov.fault = fault;
        let config = EngineConfig {
            seed: rng.next_u64(),
            instance: format!("{index}"),
            mode: opts.start_mode,
            services,
            max_timeline: 50,
            governance: gov,
        };
        // 2026-01-01T00:00Z plus up to a year.
        let wall_start_ms = 1_767_225_600_000 + (rng.below(365 * 24) as i64) * 3_600_000;

        let mut events = Vec::new();
        let until = opts.safety_ms;
        for i in 0..n {
            for t in poisson_times(&mut rng, opts.fault_per_hour / n as f64 * 2.0, until) {
                let k =
                    [FaultKind::Crash, FaultKind::Errors, FaultKind::Slow][rng.below(3) as usize];
                events.push(Event {
                    at: t,
                    kind: EventKind::Fault(i, k),
                });
                if rng.below(2) == 0 {
                    events.push(Event {
                        at: t + 30_000 + rng.below(1_200_000),
                        kind: EventKind::Heal(i),
                    });
                }
            }
        }
        let svc = |rng: &mut SplitMix64| rng.below(n as u64) as usize;
        let opt_svc = |rng: &mut SplitMix64| (rng.below(3) != 0).then(|| svc(rng));
        let opt_kind = |rng: &mut SplitMix64| {
            (rng.below(3) == 0).then(|| {
                [ActionKind::Restart, ActionKind::Exec, ActionKind::Http][rng.below(3) as usize]
            })
        };
        for t in poisson_times(&mut rng, opts.operator_per_hour, until) {
            let op = match rng.below(20) {
                0..=2 => OpEvent::Mode(
                    opt_svc(&mut rng),
                    [
                        Mode::Disabled,
                        Mode::DryRun,
                        Mode::Conservative,
                        Mode::Aggressive,
                    ][rng.below(4) as usize],
                ),
                3..=4 => OpEvent::Pause(
                    opt_svc(&mut rng),
                    opt_kind(&mut rng),
                    (rng.below(2) == 0).then(|| 60_000 + rng.below(1_800_000)),
                ),
                5..=6 => OpEvent::Resume(opt_svc(&mut rng), opt_kind(&mut rng)),
                7..=11 => OpEvent::Approve(rng.below(4) as usize, rng.below(3) as usize),
                12 => OpEvent::Reject(rng.below(4) as usize),
                13..=14 => OpEvent::Cancel(rng.below(4) as usize),
                15 => OpEvent::Force(svc(&mut rng)),
                16..=17 => OpEvent::Resolve(rng.below(4) as usize),
                _ => OpEvent::Enable(svc(&mut rng)),
            };
            events.push(Event {
                at: t,
                kind: EventKind::Op(op),
            });
        }
        for t in poisson_times(&mut rng, opts.clock_jumps_per_hour, until) {
            let kind = if rng.below(3) == 0 {
                EventKind::Suspend(1_000 + rng.below(1_800_000))
            } else {
                EventKind::WallJump(rng.below(7_200_000) as i64 - 3_600_000)
            };
            events.push(Event { at: t, kind });
        }
        for t in poisson_times(&mut rng, opts.signals_per_hour, until) {
            let eb = [0.0, 0.01, 0.05, 0.5, 1.0][rng.below(5) as usize];
            let head = [0.05, 0.19, 0.2, 0.5, 0.9][rng.below(5) as usize];
            events.push(Event {
                at: t,
                kind: EventKind::Signals(svc(&mut rng), 1 + rng.below(5) as u32, eb, head),
            });
        }
        for t in poisson_times(&mut rng, opts.clock_jumps_per_hour.max(0.5), until) {
            events.push(Event {
                at: t,
                kind: EventKind::Freeze(
                    rng.below(3_600_000) as i64 - 1_800_000,
                    60_000 + rng.below(3_600_000),
                    (rng.below(2) == 0).then(|| svc(&mut rng)),
                ),
            });
        }
        events.sort_by_key(|e| e.at);
        Scenario {
            seed,
            index,
            opts,
            config,
            wall_start_ms,
            events,
        }
    }
}

/// The result of one scenario run.
#[derive(Clone, Debug, Default)]
pub struct Outcome {
    pub steps: u64,
    pub actions: u64,
    pub incidents: u64,
    pub violation: Option<Violation>,
    /// How often each path was taken: `audit:<kind>`, `reason:<code>`,
    /// `stage:<stage>` (shows the swarm reaches the interesting paths).
    pub coverage: BTreeMap<String, u64>,
}

#[derive(Debug)]
struct PendingOutcome {
    at: u64,
    id: ActionId,
    result: Result<String, ActionFailure>,
    /// Heals the service's fault when delivered.
    heals: bool,
    service: usize,
}

/// The simulated world: services with faults, probes, an executor.
struct World {
    seed: u64,
    faults: Vec<Option<FaultKind>>,
    outcomes: Vec<PendingOutcome>,
    wall_offset: i64,
    suspended_until: u64,
    freeze: Vec<FreezeWindow>,
    noise: f64,
    probe_round: u64,
    exec_hang: f64,
    exec_fail: f64,
    exec_delay_max: u64,
    heal_prob: f64,
}

/// Maximum steps of one scenario; exceeding it is a liveness violation.
pub const MAX_STEPS: u64 = 400_000;
/// How long the liveness phase may take to converge.
pub const LIVENESS_BOUND_MS: u64 = 4 * 3_600_000;

/// Run a scenario with only the events for which `keep` is true
/// (all of them for a normal run). Writes a step trace to `trace` if given.
pub fn run_events(sc: &Scenario, events: &[Event], mut trace: Option<&mut String>) -> Outcome {
    let n = sc.opts.services;
    let names: Vec<String> = (0..n).map(svc_name).collect();
    let mut engine = Engine::new(sc.config.clone(), MonoTime::ZERO);
    let mut checker = Checker::new(&sc.config, sc.wall_start_ms);
    let mut world = World {
        seed: mix(sc.seed, sc.index ^ 0xA5A5),
        faults: vec![None; n],
        outcomes: Vec::new(),
        wall_offset: 0,
        suspended_until: 0,
        freeze: Vec::new(),
        noise: sc.opts.noise,
        probe_round: 0,
        exec_hang: sc.opts.exec_hang,
        exec_fail: sc.opts.exec_fail,
        exec_delay_max: sc.opts.exec_delay_max_ms,
        heal_prob: sc.opts.heal_prob,
    };
    let mut out = Outcome::default();
    let mut next_event = 0usize;
    let mut next_probe = sc.opts.probe_interval_ms;
    let safety_end = sc.opts.safety_ms;
    let deadline = safety_end + LIVENESS_BOUND_MS;
    let mut liveness = false;
    let mut now = 0u64;

    let feed = |engine: &mut Engine,
                checker: &mut Checker,
                world: &mut World,
                now: u64,
                input: Option<Input>,
                trace: &mut Option<&mut String>,
                out: &mut Outcome|
     -> Option<Violation> {
        if let Some(t) = trace.as_deref_mut() {
            match &input {
                Some(i) => {
                    let _ = writeln!(t, "{} > {}", MonoTime(now), describe_input(i));
                }
                None => {
                    let _ = writeln!(t, "{} > timeout", MonoTime(now));
                }
            }
        }
        checker.before_input(now, input.as_ref(), world.wall_offset);
        match input {
            Some(i) => engine.handle_input(MonoTime(now), i),
            None => engine.handle_timeout(MonoTime(now)),
        }
        let mut cmds = Vec::new();
        while let Some(c) = engine.poll_command() {
            cmds.push(c);
        }
        for c in &cmds {
            match c {
                Command::Audit(a) => {
                    *out.coverage.entry(format!("audit:{}", a.kind)).or_default() += 1;
                    if let Some(code) = a.field("reason_code") {
                        *out.coverage.entry(format!("reason:{code}")).or_default() += 1;
                    }
                }
                Command::RunAction(r) => {
                    *out.coverage
                        .entry(format!("stage:{}", r.stage.as_str()))
                        .or_default() += 1;
                }
                _ => {}
            }
            if let Some(t) = trace.as_deref_mut() {
                if let Some(s) = describe_command(c) {
                    let _ = writeln!(t, "{}   < {s}", MonoTime(now));
                }
            }
            match c {
                Command::RunAction(r) => {
                    out.actions += 1;
                    let h = mix(world.seed, r.id.0);
                    let mut rr = SplitMix64::new(h);
                    let svc = names.iter().position(|x| *x == r.service).unwrap_or(0);
                    let (delay, result) = if rr.unit() < world.exec_hang {
                        (
                            600_000,
                            Err(ActionFailure {
                                kind: ActionFailureKind::Timeout,
                                message: "hung; killed at the executor timeout".into(),
                            }),
                        )
                    } else if rr.unit() < world.exec_fail {
                        (
                            rr.below(world.exec_delay_max + 1),
                            Err(ActionFailure {
                                kind: ActionFailureKind::NonZeroExit,
                                message: "exit 1".into(),
                            }),
                        )
                    } else {
                        (rr.below(world.exec_delay_max + 1), Ok("done".to_string()))
                    };
                    let heals = result.is_ok()
                        && !matches!(
                            r.stage,
                            ActionStage::Canary | ActionStage::Revert | ActionStage::Rollback
                        )
                        && rr.unit() < world.heal_prob;
                    world.outcomes.push(PendingOutcome {
                        at: now + delay.max(1),
                        id: r.id,
                        result,
                        heals,
                        service: svc,
                    });
                }
                Command::CancelAction { id, .. } => {
                    if let Some(p) = world.outcomes.iter_mut().find(|p| p.id == *id) {
                        let cancel_at = now + 1 + mix(world.seed, id.0 ^ 7) % 2_000;
                        if cancel_at < p.at {
                            p.at = cancel_at;
                            p.heals = false;
                            p.result = Err(ActionFailure {
                                kind: ActionFailureKind::Cancelled,
                                message: "cancelled".into(),
                            });
                        }
                    }
                }
                _ => {}
            }
        }
        out.steps += 1;
        checker.after_step(now, &cmds, engine)
    };

    macro_rules! step {
        ($input:expr) => {{
            let v = feed(
                &mut engine,
                &mut checker,
                &mut world,
                now,
                $input,
                &mut trace,
                &mut out,
            );
            if let Some(v) = v {
                out.incidents = checker.incidents_seen();
                out.violation = Some(v);
                return out;
            }
        }};
    }

    // Start: the wall clock.
    step!(Some(Input::WallClock {
        unix_ms: sc.wall_start_ms,
        utc_offset_minutes: None,
    }));
    loop {
        if out.steps >= MAX_STEPS {
            out.violation = Some(Violation::new(
                "liveness.step_bound",
                now,
                format!("more than {MAX_STEPS} steps"),
            ));
            return out;
        }
        // Enter the liveness phase.
        if !liveness && now >= safety_end {
            liveness = true;
            world.noise = 0.0;
            for f in world.faults.iter_mut() {
                *f = None;
            }
            world.suspended_until = 0;
            world.freeze.clear();
            step!(Some(Input::FreezeWindows(Vec::new())));
            step!(Some(Input::Operator(OperatorCommand::Resume {
                service: None,
                kind: None,
                by: "sim-liveness".into(),
            })));
            continue;
        }
        if liveness && checker.converged(&engine) && world.outcomes.is_empty() {
            break;
        }
        let ev_at = if liveness {
            None
        } else {
            events.get(next_event).map(|e| e.at)
        };
        let out_at = world.outcomes.iter().map(|p| p.at).min();
        let timer_at = engine.poll_timeout().map(|t| t.0.max(now));
        let phase_at = (!liveness).then_some(safety_end);
        let next = [ev_at, out_at, timer_at, Some(next_probe), phase_at]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(next_probe);
        if next > deadline {
            break;
        }
        now = next.max(now);
        if out_at == Some(now) {
            let idx = world
                .outcomes
                .iter()
                .enumerate()
                .filter(|(_, p)| p.at == now)
                .min_by_key(|(_, p)| p.id)
                .map(|(i, _)| i)
                .unwrap_or(0);
            let p = world.outcomes.remove(idx);
            if p.heals {
                world.faults[p.service] = None;
            }
            step!(Some(Input::ActionOutcome {
                id: p.id,
                result: p.result,
            }));
            continue;
        }
        if ev_at == Some(now) {
            let e = events[next_event].clone();
            next_event += 1;
            let input = apply_event(&e.kind, &mut world, &engine, &names, now, sc);
            if let Some(i) = input {
                step!(Some(i));
            }
            continue;
        }
        if timer_at == Some(now) {
            step!(None);
            continue;
        }
        if next_probe == now {
            next_probe = now + sc.opts.probe_interval_ms;
            if now < world.suspended_until {
                continue;
            }
            world.probe_round += 1;
            for (i, name) in names.iter().enumerate() {
                let u = ((mix(world.seed ^ world.probe_round, i as u64) >> 11) as f64)
                    / ((1u64 << 53) as f64);
                let flip = world.noise > 0.0 && u < world.noise;
                let report = probe_report(name, world.faults[i], flip);
                step!(Some(Input::Probe(report)));
            }
            continue;
        }
        // Only the phase switch was due.
    }
    if let Some(v) = checker.at_end(now, &engine) {
        out.violation = Some(v);
    }
    out.incidents = checker.incidents_seen();
    out
}

fn probe_report(service: &str, fault: Option<FaultKind>, flip: bool) -> ProbeReport {
    let (ok, latency, failure) = match (fault, flip) {
        (None, false) | (Some(FaultKind::Errors), true) | (Some(FaultKind::Crash), true) => {
            (true, Duration::from_millis(20), None)
        }
        (None, true) => (
            false,
            Duration::from_millis(20),
            Some(ProbeFailure::Timeout),
        ),
        (Some(FaultKind::Crash), false) => (false, Duration::ZERO, Some(ProbeFailure::Exited)),
        (Some(FaultKind::Errors), false) => (
            false,
            Duration::from_millis(30),
            Some(ProbeFailure::BadStatus(500)),
        ),
        (Some(FaultKind::Slow), false) => (true, Duration::from_secs(3), None),
        (Some(FaultKind::Slow), true) => (true, Duration::from_millis(20), None),
    };
    ProbeReport {
        service: service.to_string(),
        probe: "health".into(),
        ok,
        latency,
        failure,
        detail: String::new(),
    }
}

fn apply_event(
    kind: &EventKind,
    world: &mut World,
    engine: &Engine,
    names: &[String],
    now: u64,
    sc: &Scenario,
) -> Option<Input> {
    let by = |i: usize| APPROVERS[i % APPROVERS.len()].to_string();
    match kind {
        EventKind::Fault(i, k) => {
            world.faults[*i] = Some(*k);
            None
        }
        EventKind::Heal(i) => {
            world.faults[*i] = None;
            None
        }
        EventKind::WallJump(d) => {
            world.wall_offset += d;
            let unix_ms = sc.wall_start_ms + now as i64 + world.wall_offset;
            Some(Input::WallClock {
                unix_ms,
                utc_offset_minutes: None,
            })
        }
        EventKind::Suspend(ms) => {
            world.suspended_until = now + ms;
            None
        }
        EventKind::Signals(i, inst, eb, head) => Some(Input::Signals(ServiceSignals {
            service: names[*i].clone(),
            instances: Some(*inst),
            error_budget_remaining: Some(*eb),
            capacity_headroom: Some(*head),
        })),
        EventKind::Freeze(start, len, svc) => {
            let wall = sc.wall_start_ms + now as i64 + world.wall_offset;
            let s = wall + start;
            world.freeze.push(FreezeWindow {
                name: format!("f{now}"),
                start_unix_ms: s,
                end_unix_ms: s + *len as i64,
                services: svc.map(|i| vec![names[i].clone()]),
            });
            while world.freeze.len() > 3 {
                world.freeze.remove(0);
            }
            Some(Input::FreezeWindows(world.freeze.clone()))
        }
        EventKind::Op(op) => {
            let cmd = match op {
                OpEvent::Mode(s, m) => OperatorCommand::SetMode {
                    service: s.map(|i| names[i].clone()),
                    mode: *m,
                    by: "op".into(),
                },
                OpEvent::Pause(s, k, d) => OperatorCommand::Pause {
                    service: s.map(|i| names[i].clone()),
                    kind: *k,
                    duration: d.map(Duration::from_millis),
                    by: "op".into(),
                    reason: "sim".into(),
                },
                OpEvent::Resume(s, k) => OperatorCommand::Resume {
                    service: s.map(|i| names[i].clone()),
                    kind: *k,
                    by: "op".into(),
                },
                OpEvent::Approve(n, who) => {
                    let p = engine.pending_approvals();
                    let a = p.get(n % p.len().max(1))?;
                    OperatorCommand::Approve {
                        id: a.id.clone(),
                        by: by(*who),
                    }
                }
                OpEvent::Reject(n) => {
                    let p = engine.pending_approvals();
                    let a = p.get(n % p.len().max(1))?;
                    OperatorCommand::Reject {
                        id: a.id.clone(),
                        by: "carol".into(),
                        reason: "sim".into(),
                    }
                }
                OpEvent::Cancel(n) => {
                    let f = engine.inflight_actions();
                    let a = f.get(n % f.len().max(1))?;
                    OperatorCommand::CancelAction {
                        id: a.0,
                        by: "op".into(),
                        reason: "sim".into(),
                    }
                }
                OpEvent::Force(i) => OperatorCommand::ForceAction {
                    service: names[*i].clone(),
                    action: "fix".into(),
                    by: "op".into(),
                    reason: "sim override".into(),
                },
                OpEvent::Resolve(n) => {
                    let o = engine.open_incidents();
                    let inc = o.get(n % o.len().max(1))?;
                    OperatorCommand::ResolveIncident {
                        id: inc.id.0.clone(),
                        by: "op".into(),
                        reason: "sim".into(),
                    }
                }
                OpEvent::Enable(i) => OperatorCommand::EnableAutoheal {
                    service: names[*i].clone(),
                    by: "op".into(),
                },
            };
            Some(Input::Operator(cmd))
        }
    }
}

fn describe_input(i: &Input) -> String {
    match i {
        Input::Probe(p) => format!(
            "probe {} ok={} latency={}ms failure={:?}",
            p.service,
            p.ok,
            p.latency.as_millis(),
            p.failure
        ),
        Input::ActionOutcome { id, result } => format!(
            "outcome {id} {}",
            match result {
                Ok(_) => "ok".to_string(),
                Err(f) => format!("failed {}", f.kind.as_str()),
            }
        ),
        other => format!("{other:?}"),
    }
}

fn describe_command(c: &Command) -> Option<String> {
    match c {
        Command::Audit(a) => Some(format!(
            "audit {} {}",
            a.kind,
            a.fields
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(" ")
        )),
        Command::RunAction(r) => Some(format!(
            "run {} {} {} risk={} stage={} attempt={}",
            r.id,
            r.service,
            r.action,
            r.risk.as_str(),
            r.stage.as_str(),
            r.attempt
        )),
        Command::Notify(n) => Some(format!("notify {} {}", n.severity.as_str(), n.title)),
        Command::IncidentChanged(_) => None,
        Command::CancelAction { id, .. } => Some(format!("cancel {id}")),
    }
}

/// Run scenario `index` of `seed`.
pub fn run_scenario(
    seed: u64,
    index: u64,
    profile: Profile,
    fault: PolicyFault,
) -> (Scenario, Outcome) {
    let sc = Scenario::generate(seed, index, profile, fault);
    let out = run_events(&sc, &sc.events, None);
    (sc, out)
}

/// Delta-debugging shrink: remove chunks of events while the same invariant
/// still fails. Deterministic. Returns the smallest event list found.
pub fn shrink(sc: &Scenario, kind: &str) -> Vec<Event> {
    let mut events = sc.events.clone();
    let fails = |evs: &[Event]| {
        run_events(sc, evs, None)
            .violation
            .is_some_and(|v| v.kind == kind)
    };
    let mut chunk = events.len().div_ceil(2).max(1);
    let mut rounds = 0;
    while chunk >= 1 && rounds < 200 {
        rounds += 1;
        let mut i = 0;
        let mut removed_any = false;
        while i < events.len() {
            let mut candidate = events.clone();
            let end = (i + chunk).min(candidate.len());
            candidate.drain(i..end);
            if fails(&candidate) {
                events = candidate;
                removed_any = true;
            } else {
                i += chunk;
            }
        }
        if chunk == 1 && !removed_any {
            break;
        }
        if !removed_any || chunk > 1 {
            chunk = (chunk / 2).max(1);
        }
    }
    events
}

/// Totals over many scenarios.
#[derive(Clone, Debug, Default)]
pub struct Summary {
    pub scenarios: u64,
    pub steps: u64,
    pub actions: u64,
    pub incidents: u64,
    pub violations: u64,
    /// The first violating scenario: (index, violation).
    pub first: Option<(u64, Violation)>,
    pub coverage: BTreeMap<String, u64>,
}

impl Summary {
    /// Add another summary (the first violation is the lowest index).
    pub fn merge(&mut self, p: Summary) {
        self.scenarios += p.scenarios;
        self.steps += p.steps;
        self.actions += p.actions;
        self.incidents += p.incidents;
        self.violations += p.violations;
        if let Some((k, v)) = p.first {
            if self.first.as_ref().is_none_or(|(k0, _)| k < *k0) {
                self.first = Some((k, v));
            }
        }
        for (k, n) in p.coverage {
            *self.coverage.entry(k).or_default() += n;
        }
    }
}

/// Run scenarios `range` of `seed`, stopping at the first violation when
/// `stop_at_first`.
pub fn run_many(
    seed: u64,
    range: std::ops::Range<u64>,
    profile: Profile,
    fault: PolicyFault,
    stop_at_first: bool,
) -> Summary {
    let mut s = Summary::default();
    for k in range {
        let (_, out) = run_scenario(seed, k, profile, fault);
        s.scenarios += 1;
        s.steps += out.steps;
        s.actions += out.actions;
        s.incidents += out.incidents;
        for (k, n) in out.coverage {
            *s.coverage.entry(k).or_default() += n;
        }
        if let Some(v) = out.violation {
            s.violations += 1;
            if s.first.is_none() {
                s.first = Some((k, v));
            }
            if stop_at_first {
                break;
            }
        }
    }
    s
}
