//! medic-sim: deterministic simulation testing of medic's sans-IO engine.
//!
//! One `u64` seed names a whole run. Scenario `k` of seed `s` gets its own
//! PRNG; from it [`SwarmOptions::generate`] picks the scenario's *parameters*
//! (TigerBeetle-style swarm testing: service count, instances, risk and
//! class mix, fault and noise rates, executor failure rates and delays,
//! operator activity and roles, clock jumps, medic restarts, tightened
//! limits) and then a list of timed [`Event`]s. [`run_scenario`] plays the
//! events against the engine on a simulated clock, with a simulated world
//! that plays the probes and the executor, and checks the invariants of
//! [`check`] after every step.
//!
//! **medic restarts** are events: the driver takes [`Engine::snapshot`]
//! (through its JSON form, as the store keeps it), drops the engine, lets the
//! world run on for the downtime (executions in flight finish or not, their
//! results may still arrive later, operator requests fail, probes are not
//! read), then builds a fresh engine, [`Engine::restore`]s the snapshot and
//! sends the facts a starting daemon sends (signals, then the wall clock).
//! The fresh engine's clock may start from zero, like a new process's.
//!
//! Two phases, as in TigerBeetle's VOPR: a **safety** phase with faults,
//! noise, operator commands, clock jumps and restarts, then a **liveness**
//! phase in which the world heals, noise stops, an operator resumes
//! automation and freeze windows are lifted; every incident must then close
//! (or sit escalated to a human) within a bound, with no action left in
//! flight.
//!
//! A violating scenario is shrunk ([`shrink`]) by removing events while the
//! same invariant still fails, down to a list from which no single event can
//! be removed; `medic sim --seed S --scenario K --trace` replays it exactly.
#![forbid(unsafe_code)]

pub mod check;
pub mod cli;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use medic_core::governance::PolicyFault;
use medic_core::{
    ActionClass, ActionFailure, ActionFailureKind, ActionGovernance, ActionId, ActionKind,
    ActionSpec, ActionStage, Actor, Command, Condition, Engine, EngineConfig, FailureRule,
    FreezeWindow, GovernanceConfig, Input, LatencyRule, Mode, MonoTime, Notice, OperatorCommand,
    ProbeFailure, ProbeReport, ProbeSpec, RecoveryRule, Remediation, RetryPolicy, RevertSpec, Risk,
    Role, ServiceGovernance, ServicePolicy, ServiceSignals, ServiceSpec, Snapshot, SplitMix64,
    StartupSpec,
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
    /// medic restarts (snapshot, downtime, restore) per hour.
    pub restarts_per_hour: f64,
    pub start_mode: Mode,
    pub two_person: bool,
    pub fault: PolicyFault,
    /// Also check what intents record (tier, class, score); off only to
    /// show that the behavioural checks catch a bug on their own.
    pub check_records: bool,
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
            restarts_per_hour: pick(rng, &[0.0, 2.0, 6.0, 20.0]),
            start_mode: [
                Mode::Disabled,
                Mode::DryRun,
                Mode::Conservative,
                Mode::Aggressive,
                Mode::Aggressive,
            ][rng.below(5) as usize],
            two_person: rng.below(2) == 0,
            fault: PolicyFault::None,
            check_records: true,
        }
    }

    /// One line, printed with the seed.
    pub fn describe(&self) -> String {
        format!(
            "services={} safety={}s probe={}ms faults/h={} noise={} exec_fail={} \
             exec_delay_max={}ms hang={} heal={} ops/h={} jumps/h={} signals/h={} \
             restarts/h={} mode={} two_person={} fault={:?}",
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
            self.restarts_per_hour,
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
    /// An operator command, issued with this role (usually enough for it;
    /// sometimes not, and then it must be refused).
    Op(OpEvent, Role),
    /// The host wall clock jumps (ms, may be negative).
    WallJump(i64),
    /// The host sleeps: no probes for this long.
    Suspend(u64),
    Signals(usize, u32, f64, f64),
    /// A freeze window from `start` (relative to now, ms) lasting `len` ms.
    Freeze(i64, u64, Option<usize>),
    /// medic stops (its snapshot is kept), is away `downtime_ms`, and starts
    /// again with its engine clock at `epoch_ms` (`None`: the clock runs on,
    /// as a host monotonic clock does).
    Restart {
        downtime_ms: u64,
        epoch_ms: Option<u64>,
    },
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

fn pick_risk(rng: &mut SplitMix64) -> Risk {
    match rng.below(20) {
        0..=6 => Risk::Low,
        7..=13 => Risk::Medium,
        14..=17 => Risk::High,
        _ => Risk::Critical,
    }
}

/// The heal action of one service: kind, explicit tier, and its governance
/// entry (`None`: no entry at all; `Some(None)`: an entry without a class).
fn pick_fix(rng: &mut SplitMix64) -> (ActionKind, Option<Risk>, Option<Option<ActionClass>>) {
    let any_kind = |rng: &mut SplitMix64| {
        [ActionKind::Restart, ActionKind::Exec, ActionKind::Http][rng.below(3) as usize]
    };
    match rng.below(8) {
        // HIGH only through its class: an exec failover that states no tier.
        0 | 1 => (
            ActionKind::Exec,
            None,
            Some(Some(ActionClass::DatabaseFailover)),
        ),
        // A restart with a governance entry but no class: still a restart
        // (restart budget, medium by default).
        2 => (
            ActionKind::Restart,
            (rng.below(2) == 0).then(|| pick_risk(rng)),
            Some(None),
        ),
        // No governance entry at all.
        3 => {
            let kind = any_kind(rng);
            (kind, (rng.below(2) == 0).then(|| pick_risk(rng)), None)
        }
        _ => {
            let kind = any_kind(rng);
            let risk = (rng.below(3) != 0).then(|| pick_risk(rng));
            let class = [
                None,
                Some(ActionClass::RestartService),
                Some(ActionClass::ToggleFeatureFlag),
                Some(ActionClass::Fallback),
                Some(ActionClass::ClearCache),
                Some(ActionClass::DatabaseFailover),
                Some(ActionClass::ScaleOut),
                Some(ActionClass::TrafficRedirect),
                Some(ActionClass::DataMigration),
                Some(ActionClass::Other),
            ][rng.below(10) as usize];
            (kind, risk, Some(class))
        }
    }
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
            let (kind, risk, fix_gov) = pick_fix(&mut rng);
            let revert = (rng.below(3) == 0).then(|| RevertSpec {
                action: "undo".into(),
                after: Duration::from_secs(10 + rng.below(110)),
                green_checks: None,
                green_probe: None,
            });
            let undo_risk = (rng.below(4) != 0).then_some(Risk::Low);
            let actions = vec![
                ActionSpec {
                    name: "fix".into(),
                    kind,
                    risk,
                    revert,
                    verify: None,
                },
                ActionSpec {
                    name: "undo".into(),
                    kind: ActionKind::Http,
                    risk: undo_risk,
                    revert: None,
                    verify: None,
                },
                ActionSpec {
                    name: "shed".into(),
                    kind: ActionKind::Http,
                    risk: Some(Risk::Low),
                    revert: Some(RevertSpec {
                        action: "unshed".into(),
                        after: Duration::from_secs(30),
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
                event: false,
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
            let canary = rng.below(2) == 0;
            let change_size = (rng.below(5) == 0).then(|| rng.unit());
            if let Some(class) = fix_gov {
                ag.insert(
                    "fix".to_string(),
                    ActionGovernance {
                        class,
                        change_size,
                        removes_capacity: None,
                        canary,
                    },
                );
            }
            ag.insert(
                "shed".to_string(),
                ActionGovernance {
                    class: Some(ActionClass::RateLimit),
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
                startup: StartupSpec {
                    grace: Duration::ZERO,
                },
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
        // Mostly someone allowed to; sometimes a lesser role (refused).
        let role = |rng: &mut SplitMix64| {
            if rng.below(10) == 0 {
                [Role::Viewer, Role::Operator, Role::Approver][rng.below(3) as usize]
            } else {
                Role::Admin
            }
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
            let r = role(&mut rng);
            events.push(Event {
                at: t,
                kind: EventKind::Op(op, r),
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
        for t in poisson_times(&mut rng, opts.restarts_per_hour, until) {
            // A few seconds to a quarter of an hour away.
            let downtime_ms = match rng.below(3) {
                0 => 1_000 + rng.below(10_000),
                1 => 10_000 + rng.below(110_000),
                _ => 120_000 + rng.below(780_000),
            };
            let epoch_ms = match rng.below(3) {
                0 => None,
                1 => Some(0),
                _ => Some(rng.below(7_200_000)),
            };
            // Often an operator pause set shortly before, lasting past the
            // restart: it must still hold afterwards.
            if rng.below(3) != 0 {
                let before = (1 + rng.below(120_000)).min(t);
                let lasts = before + downtime_ms + 30_000 + rng.below(1_800_000);
                let scope = opt_svc(&mut rng);
                let kind = if rng.below(4) == 0 {
                    opt_kind(&mut rng)
                } else {
                    None
                };
                events.push(Event {
                    at: t - before,
                    kind: EventKind::Op(OpEvent::Pause(scope, kind, Some(lasts)), Role::Operator),
                });
            }
            events.push(Event {
                at: t,
                kind: EventKind::Restart {
                    downtime_ms,
                    epoch_ms,
                },
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
    /// medic restarts played (snapshot, downtime, restore).
    pub restarts: u64,
    pub violation: Option<Violation>,
    /// How often each path was taken: `audit:<kind>`, `reason:<code>`,
    /// `stage:<stage>`, and `check:<what>` for what the checkers verified
    /// (shows the swarm reaches the interesting paths).
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
    /// The last signals of each service: a starting medic reads them again.
    signals: Vec<Option<ServiceSignals>>,
}

impl World {
    fn wall(&self, sc: &Scenario, now: u64) -> i64 {
        sc.wall_start_ms + now as i64 + self.wall_offset
    }
}

/// medic is down: until when, and what it left in the store.
struct Down {
    until: u64,
    downtime_ms: u64,
    epoch_ms: Option<u64>,
    snapshot: String,
}

/// What one step hands the engine.
enum Step {
    Input(Input),
    Timeout,
    Operate(Actor, OperatorCommand),
}

/// Maximum steps of one scenario; exceeding it is a liveness violation.
pub const MAX_STEPS: u64 = 400_000;
/// How long the liveness phase may take to converge.
pub const LIVENESS_BOUND_MS: u64 = 4 * 3_600_000;

/// One run of one scenario.
struct Sim<'a> {
    sc: &'a Scenario,
    names: Vec<String>,
    engine: Engine,
    /// Sim time at which the current engine was built, and its clock then.
    base: u64,
    epoch: u64,
    checker: Checker,
    world: World,
    out: Outcome,
    trace: Option<&'a mut String>,
    now: u64,
    down: Option<Down>,
}

impl<'a> Sim<'a> {
    fn new(sc: &'a Scenario, trace: Option<&'a mut String>) -> Sim<'a> {
        let n = sc.opts.services;
        let mut engine = Engine::new(sc.config.clone(), MonoTime::ZERO);
        engine.inject_fault(sc.opts.fault);
        Sim {
            sc,
            names: (0..n).map(svc_name).collect(),
            engine,
            base: 0,
            epoch: 0,
            checker: Checker::new(&sc.config).check_records(sc.opts.check_records),
            world: World {
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
                signals: vec![None; n],
            },
            out: Outcome::default(),
            trace,
            now: 0,
            down: None,
        }
    }

    /// The current engine's clock now.
    fn engine_now(&self) -> MonoTime {
        MonoTime(self.now - self.base + self.epoch)
    }

    /// Sim time of an engine time.
    fn sim_time(&self, t: MonoTime) -> u64 {
        let v = i128::from(t.0) - i128::from(self.epoch) + i128::from(self.base);
        u64::try_from(v.max(0)).unwrap_or(u64::MAX)
    }

    fn log(&mut self, line: impl FnOnce() -> String) {
        let now = self.now;
        if let Some(t) = self.trace.as_deref_mut() {
            let _ = writeln!(t, "{} {}", MonoTime(now), line());
        }
    }

    fn count(&mut self, key: String) {
        *self.out.coverage.entry(key).or_default() += 1;
    }

    /// Hand one input, timeout or operator command to the engine, then drain
    /// and check what it did.
    fn step(&mut self, step: Step) -> Option<Violation> {
        let now = self.now;
        let et = self.engine_now();
        match step {
            Step::Input(i) => {
                self.log(|| format!("> {}", describe_input(&i)));
                self.checker.before_input(now, Some(&i));
                self.engine.handle_input(et, i);
            }
            Step::Timeout => {
                self.log(|| "> timeout".to_string());
                self.checker.before_input(now, None);
                self.engine.handle_timeout(et);
            }
            Step::Operate(actor, cmd) => {
                self.log(|| format!("> op {}({}) {cmd:?}", actor.id, actor.role.as_str()));
                self.checker.before_operate(now, &actor, &cmd);
                let answer = self.engine.operate(et, &actor, cmd.clone());
                self.log(|| match &answer {
                    Ok(a) => format!("  = ok: {}", a.message),
                    Err(e) => format!("  = refused ({}): {e}", e.code().as_str()),
                });
                if let Some(v) = self.checker.after_operate(now, &actor, &cmd, &answer) {
                    return Some(v);
                }
            }
        }
        self.drain()
    }

    /// Drain notices (recorded first), then commands; the world reacts to
    /// the commands; the checkers judge the step.
    fn drain(&mut self) -> Option<Violation> {
        let now = self.now;
        let mut notices = Vec::new();
        while let Some(n) = self.engine.poll_notice() {
            notices.push(n);
        }
        let mut cmds = Vec::new();
        while let Some(c) = self.engine.poll_command() {
            cmds.push(c);
        }
        for n in &notices {
            self.count(format!("audit:{}", n.kind().as_str()));
            if let Some(code) = notice_reason(n) {
                self.count(format!("reason:{code}"));
            }
            self.log(|| format!("  ! {}", describe_notice(n)));
        }
        for c in &cmds {
            if let Command::RunAction(r) = c {
                self.count(format!("stage:{}", r.stage.as_str()));
            }
            if let Some(s) = describe_command(c) {
                self.log(|| format!("  < {s}"));
            }
            self.world_reacts(c);
        }
        self.out.steps += 1;
        self.checker.after_step(now, &notices, &cmds, &self.engine)
    }

    /// The executor: run actions (with delays, failures, hangs), cancel them.
    fn world_reacts(&mut self, c: &Command) {
        let now = self.now;
        let world = &mut self.world;
        match c {
            // No staged canaries in simulated scenarios (no `canaries` plan).
            Command::CollectCanary(_) => {}
            Command::RunAction(r) => {
                self.out.actions += 1;
                let mut rr = SplitMix64::new(mix(world.seed, r.id.0));
                let svc = self.names.iter().position(|x| *x == r.service).unwrap_or(0);
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
            Command::Notify(_) | Command::IncidentChanged(_) => {}
        }
    }

    /// medic stops: the store keeps its snapshot (as JSON); the engine is gone.
    fn stop(&mut self, downtime_ms: u64, epoch_ms: Option<u64>) -> Option<Violation> {
        let now = self.now;
        let snap = self.engine.snapshot();
        let json = match serde_json::to_string(&snap) {
            Ok(j) => j,
            Err(e) => {
                return Some(Violation::new(
                    "restart.snapshot",
                    now,
                    format!("the snapshot does not serialise: {e}"),
                ))
            }
        };
        self.log(|| {
            format!(
                "= medic stops for {downtime_ms}ms (snapshot {} bytes)",
                json.len()
            )
        });
        self.checker.on_stop(now);
        self.out.restarts += 1;
        self.down = Some(Down {
            until: now + downtime_ms.max(1),
            downtime_ms,
            epoch_ms,
            snapshot: json,
        });
        None
    }

    /// medic starts again: a fresh engine restores the snapshot, then gets
    /// what a starting daemon sends (signals, then the wall clock).
    fn start(&mut self) -> Option<Violation> {
        let down = self.down.take()?;
        let now = self.now;
        let snap: Snapshot = match serde_json::from_str(&down.snapshot) {
            Ok(s) => s,
            Err(e) => {
                return Some(Violation::new(
                    "restart.snapshot",
                    now,
                    format!("the stored snapshot does not parse: {e}"),
                ))
            }
        };
        let mut cfg = self.sc.config.clone();
        // Freeze windows come from configuration: known before the first decision.
        cfg.governance.freeze_windows = self.world.freeze.clone();
        cfg.instance = format!("{}.{}", self.sc.index, self.out.restarts);
        let epoch = down.epoch_ms.unwrap_or(self.now - self.base + self.epoch);
        let mut engine = Engine::new(cfg, MonoTime(epoch));
        engine.inject_fault(self.sc.opts.fault);
        self.engine = engine;
        self.base = now;
        self.epoch = epoch;
        self.log(|| {
            format!(
                "= medic starts (engine clock {}), restoring after {}ms away",
                MonoTime(epoch),
                down.downtime_ms
            )
        });
        self.checker.on_start(now, &self.world.freeze);
        if let Err(e) = self
            .engine
            .restore(snap, Duration::from_millis(down.downtime_ms))
        {
            return Some(Violation::new("restart.restore", now, e.to_string()));
        }
        if let Some(v) = self.drain() {
            return Some(v);
        }
        for i in 0..self.names.len() {
            let Some(s) = self.world.signals.get(i).cloned().flatten() else {
                continue;
            };
            if let Some(v) = self.step(Step::Input(Input::Signals(s))) {
                return Some(v);
            }
        }
        let unix_ms = self.world.wall(self.sc, now);
        self.step(Step::Input(Input::WallClock {
            unix_ms,
            utc_offset_minutes: None,
        }))
    }

    /// Play one scenario event.
    fn event(&mut self, kind: &EventKind) -> Option<Violation> {
        let now = self.now;
        let up = self.down.is_none();
        match kind {
            EventKind::Fault(i, k) => {
                if let Some(f) = self.world.faults.get_mut(*i) {
                    *f = Some(*k);
                }
                None
            }
            EventKind::Heal(i) => {
                if let Some(f) = self.world.faults.get_mut(*i) {
                    *f = None;
                }
                None
            }
            EventKind::Suspend(ms) => {
                self.world.suspended_until = now + ms;
                None
            }
            EventKind::WallJump(d) => {
                self.world.wall_offset += d;
                let unix_ms = self.world.wall(self.sc, now);
                if !up {
                    return None;
                }
                self.step(Step::Input(Input::WallClock {
                    unix_ms,
                    utc_offset_minutes: None,
                }))
            }
            EventKind::Signals(i, inst, eb, head) => {
                let name = self.names.get(*i)?.clone();
                let s = ServiceSignals {
                    service: name,
                    instances: Some(*inst),
                    error_budget_remaining: Some(*eb),
                    capacity_headroom: Some(*head),
                };
                if let Some(slot) = self.world.signals.get_mut(*i) {
                    *slot = Some(s.clone());
                }
                if !up {
                    return None;
                }
                self.step(Step::Input(Input::Signals(s)))
            }
            EventKind::Freeze(start, len, svc) => {
                let s = self.world.wall(self.sc, now) + start;
                let services = match svc {
                    Some(i) => Some(vec![self.names.get(*i)?.clone()]),
                    None => None,
                };
                self.world.freeze.push(FreezeWindow {
                    name: format!("f{now}"),
                    start_unix_ms: s,
                    end_unix_ms: s + *len as i64,
                    services,
                });
                while self.world.freeze.len() > 3 {
                    self.world.freeze.remove(0);
                }
                if !up {
                    return None;
                }
                self.step(Step::Input(Input::FreezeWindows(self.world.freeze.clone())))
            }
            EventKind::Restart {
                downtime_ms,
                epoch_ms,
            } => {
                if !up {
                    self.log(|| "= restart ignored: medic is already down".to_string());
                    return None;
                }
                self.stop(*downtime_ms, *epoch_ms)
            }
            EventKind::Op(op, role) => {
                if !up {
                    self.log(|| format!("= {op:?} lost: medic is down"));
                    return None;
                }
                let (actor, cmd) = self.op_command(op, *role)?;
                self.step(Step::Operate(actor, cmd))
            }
        }
    }

    fn op_command(&self, op: &OpEvent, role: Role) -> Option<(Actor, OperatorCommand)> {
        let name = |i: usize| self.names.get(i).cloned();
        let opt_name = |i: Option<usize>| match i {
            Some(i) => name(i).map(Some),
            None => Some(None),
        };
        let as_op = Actor::new("op", role);
        Some(match op {
            OpEvent::Mode(s, m) => (
                as_op,
                OperatorCommand::SetMode {
                    service: opt_name(*s)?,
                    mode: *m,
                },
            ),
            OpEvent::Pause(s, k, d) => (
                as_op,
                OperatorCommand::Pause {
                    service: opt_name(*s)?,
                    kind: *k,
                    duration: d.map(Duration::from_millis),
                    reason: "sim".into(),
                },
            ),
            OpEvent::Resume(s, k) => (
                as_op,
                OperatorCommand::Resume {
                    service: opt_name(*s)?,
                    kind: *k,
                },
            ),
            OpEvent::Approve(n, who) => {
                let p = self.engine.pending_approvals();
                let a = p.get(n % p.len().max(1))?;
                (
                    Actor::new(APPROVERS[who % APPROVERS.len()], role),
                    OperatorCommand::Approve { id: a.id.clone() },
                )
            }
            OpEvent::Reject(n) => {
                let p = self.engine.pending_approvals();
                let a = p.get(n % p.len().max(1))?;
                (
                    Actor::new("carol", role),
                    OperatorCommand::Reject {
                        id: a.id.clone(),
                        reason: "sim".into(),
                    },
                )
            }
            OpEvent::Cancel(n) => {
                let f = self.engine.inflight_actions();
                let a = f.get(n % f.len().max(1))?;
                (
                    as_op,
                    OperatorCommand::CancelAction {
                        id: a.0,
                        reason: "sim".into(),
                    },
                )
            }
            OpEvent::Force(i) => (
                as_op,
                OperatorCommand::ForceAction {
                    service: name(*i)?,
                    action: "fix".into(),
                    reason: "sim override".into(),
                },
            ),
            OpEvent::Resolve(n) => {
                let o = self.engine.open_incidents();
                let inc = o.get(n % o.len().max(1))?;
                (
                    as_op,
                    OperatorCommand::ResolveIncident {
                        id: inc.id.0.clone(),
                        reason: "sim".into(),
                    },
                )
            }
            OpEvent::Enable(i) => (
                as_op,
                OperatorCommand::EnableAutoheal { service: name(*i)? },
            ),
        })
    }

    fn probe_round(&mut self) -> Option<Violation> {
        self.world.probe_round += 1;
        for i in 0..self.names.len() {
            let u = ((mix(self.world.seed ^ self.world.probe_round, i as u64) >> 11) as f64)
                / ((1u64 << 53) as f64);
            let flip = self.world.noise > 0.0 && u < self.world.noise;
            let fault = self.world.faults.get(i).copied().flatten();
            let report = probe_report(&self.names[i], fault, flip);
            if let Some(v) = self.step(Step::Input(Input::Probe(report))) {
                return Some(v);
            }
        }
        None
    }

    /// Both phases; returns the first violation.
    fn run(&mut self, events: &[Event]) -> Option<Violation> {
        let sc = self.sc;
        let mut next_event = 0usize;
        let mut next_probe = sc.opts.probe_interval_ms;
        let safety_end = sc.opts.safety_ms;
        let deadline = safety_end + LIVENESS_BOUND_MS;
        let mut liveness = false;
        let start_wall = self.world.wall(sc, 0);
        if let Some(v) = self.step(Step::Input(Input::WallClock {
            unix_ms: start_wall,
            utc_offset_minutes: None,
        })) {
            return Some(v);
        }
        loop {
            if self.out.steps >= MAX_STEPS {
                return Some(Violation::new(
                    "liveness.step_bound",
                    self.now,
                    format!("more than {MAX_STEPS} steps"),
                ));
            }
            let up = self.down.is_none();
            // Enter the liveness phase (once medic is up).
            if !liveness && up && self.now >= safety_end {
                liveness = true;
                self.world.noise = 0.0;
                for f in self.world.faults.iter_mut() {
                    *f = None;
                }
                self.world.suspended_until = 0;
                self.world.freeze.clear();
                if let Some(v) = self.step(Step::Input(Input::FreezeWindows(Vec::new()))) {
                    return Some(v);
                }
                let resume = OperatorCommand::Resume {
                    service: None,
                    kind: None,
                };
                let actor = Actor::new("sim-liveness", Role::Admin);
                if let Some(v) = self.step(Step::Operate(actor, resume)) {
                    return Some(v);
                }
                continue;
            }
            if liveness && self.checker.converged(&self.engine) && self.world.outcomes.is_empty() {
                break;
            }
            let ev_at = if liveness {
                None
            } else {
                events.get(next_event).map(|e| e.at)
            };
            let out_at = self.world.outcomes.iter().map(|p| p.at).min();
            let timer_at = if up {
                self.engine
                    .poll_timeout()
                    .map(|t| self.sim_time(t).max(self.now))
            } else {
                None
            };
            let up_at = self.down.as_ref().map(|d| d.until);
            let phase_at = (!liveness && up).then_some(safety_end);
            let next = [up_at, ev_at, out_at, timer_at, Some(next_probe), phase_at]
                .into_iter()
                .flatten()
                .min()
                .unwrap_or(next_probe);
            if next > deadline {
                break;
            }
            self.now = next.max(self.now);
            let now = self.now;
            if up_at == Some(now) {
                if let Some(v) = self.start() {
                    return Some(v);
                }
                continue;
            }
            if out_at == Some(now) {
                let idx = self
                    .world
                    .outcomes
                    .iter()
                    .enumerate()
                    .filter(|(_, p)| p.at == now)
                    .min_by_key(|(_, p)| p.id)
                    .map(|(i, _)| i)
                    .unwrap_or(0);
                let p = self.world.outcomes.remove(idx);
                if p.heals {
                    if let Some(f) = self.world.faults.get_mut(p.service) {
                        *f = None;
                    }
                }
                if let Some(until) = self.down.as_ref().map(|d| d.until) {
                    // Nobody listens. Some executors report again once
                    // medic is back; the rest of the results are lost.
                    let late = mix(self.world.seed, p.id.0 ^ 0x1A7E) & 1 == 0;
                    let id = p.id;
                    self.log(|| {
                        format!(
                            "= {id} finished while medic is down ({})",
                            if late {
                                "reported later"
                            } else {
                                "result lost"
                            }
                        )
                    });
                    if late {
                        self.world.outcomes.push(PendingOutcome {
                            at: until + 1,
                            heals: false,
                            ..p
                        });
                    }
                    continue;
                }
                if let Some(v) = self.step(Step::Input(Input::ActionOutcome {
                    id: p.id,
                    result: p.result,
                })) {
                    return Some(v);
                }
                continue;
            }
            if ev_at == Some(now) {
                let Some(e) = events.get(next_event).cloned() else {
                    break;
                };
                next_event += 1;
                if let Some(v) = self.event(&e.kind) {
                    return Some(v);
                }
                continue;
            }
            if timer_at == Some(now) {
                if let Some(v) = self.step(Step::Timeout) {
                    return Some(v);
                }
                continue;
            }
            if next_probe == now {
                next_probe = now + sc.opts.probe_interval_ms;
                if !up || now < self.world.suspended_until {
                    continue;
                }
                if let Some(v) = self.probe_round() {
                    return Some(v);
                }
                continue;
            }
            // Only the phase switch was due.
        }
        self.checker.at_end(self.now, &self.engine)
    }
}

/// Run a scenario with the given events (all of them for a normal run, a
/// subset when shrinking). Writes a step trace to `trace` if given.
pub fn run_events(sc: &Scenario, events: &[Event], trace: Option<&mut String>) -> Outcome {
    let mut sim = Sim::new(sc, trace);
    let violation = sim.run(events);
    let mut out = std::mem::take(&mut sim.out);
    out.violation = violation;
    out.incidents = sim.checker.incidents_seen();
    for (k, n) in sim.checker.coverage() {
        *out.coverage.entry(format!("check:{k}")).or_default() += n;
    }
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

/// The reason code a notice carries, if one (for coverage).
fn notice_reason(n: &Notice) -> Option<&'static str> {
    match n {
        Notice::Decision { reason_code, .. } | Notice::RevertDropped { reason_code, .. } => {
            reason_code.map(|c| c.as_str())
        }
        Notice::ApprovalRequested { reason_code, .. }
        | Notice::HealRetrying { reason_code, .. }
        | Notice::IncidentEscalated { reason_code, .. }
        | Notice::AutohealDisabled { reason_code, .. }
        | Notice::RevertDeferred { reason_code, .. } => Some(reason_code.as_str()),
        Notice::OperatorRejected { error, .. } => Some(error.as_str()),
        _ => None,
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

fn describe_notice(n: &Notice) -> String {
    let kind = n.kind().as_str();
    match n {
        Notice::Decision {
            incident,
            action,
            stage,
            verdict,
            reason_code,
            ..
        } => format!(
            "{kind} {incident} {action} {} {} {}",
            stage.as_str(),
            verdict.as_str(),
            reason_code.map(|c| c.as_str()).unwrap_or("-")
        ),
        Notice::ActionIntent {
            action_id,
            incident,
            service,
            action,
            class,
            risk,
            score,
            stage,
            ..
        } => format!(
            "{kind} {action_id} {} {service} {action} class={class} risk={} score={score:.3} stage={}",
            incident.as_ref().map(|i| i.0.as_str()).unwrap_or("-"),
            risk.as_str(),
            stage.as_str()
        ),
        Notice::ActionOutcome {
            action_id, status, ..
        } => format!("{kind} {action_id} {}", status.as_str()),
        other => format!("{kind} {other:?}"),
    }
}

fn describe_command(c: &Command) -> Option<String> {
    match c {
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
        Command::CollectCanary(w) => {
            Some(format!("collect-canary {} stage={}", w.service, w.stage))
        }
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

/// Whether `events` still break invariant `kind`.
pub fn reproduces(sc: &Scenario, events: &[Event], kind: &str) -> bool {
    run_events(sc, events, None)
        .violation
        .is_some_and(|v| v.kind == kind)
}

/// Delta-debugging shrink: remove chunks of events, then single events,
/// while the same invariant still fails. Deterministic. The result is
/// 1-minimal (removing any one more event makes the violation go away)
/// unless the round bound is hit first.
pub fn shrink(sc: &Scenario, kind: &str) -> Vec<Event> {
    let mut events = sc.events.clone();
    let mut chunk = events.len().div_ceil(2).max(1);
    let mut rounds = 0;
    while rounds < 200 {
        rounds += 1;
        let mut i = 0;
        let mut removed_any = false;
        while i < events.len() {
            let mut candidate = events.clone();
            let end = (i + chunk).min(candidate.len());
            candidate.drain(i..end);
            if reproduces(sc, &candidate, kind) {
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
    pub restarts: u64,
    pub violations: u64,
    /// The first violating scenario: (index, violation).
    pub first: Option<(u64, Violation)>,
    /// The lowest violating scenarios (index, invariant), at most
    /// [`Summary::LISTED`].
    pub violating: Vec<(u64, &'static str)>,
    pub coverage: BTreeMap<String, u64>,
}

impl Summary {
    pub const LISTED: usize = 20;

    fn note(&mut self, k: u64, v: &Violation) {
        self.violating.push((k, v.kind));
        self.violating.sort_unstable();
        self.violating.truncate(Summary::LISTED);
    }

    /// Add another summary (the first violation is the lowest index).
    pub fn merge(&mut self, p: Summary) {
        self.scenarios += p.scenarios;
        self.steps += p.steps;
        self.actions += p.actions;
        self.incidents += p.incidents;
        self.restarts += p.restarts;
        self.violations += p.violations;
        if let Some((k, v)) = p.first {
            if self.first.as_ref().is_none_or(|(k0, _)| k < *k0) {
                self.first = Some((k, v));
            }
        }
        for (k, n) in p.coverage {
            *self.coverage.entry(k).or_default() += n;
        }
        for (k, kind) in p.violating {
            self.violating.push((k, kind));
        }
        self.violating.sort_unstable();
        self.violating.truncate(Summary::LISTED);
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
        s.restarts += out.restarts;
        for (k, n) in out.coverage {
            *s.coverage.entry(k).or_default() += n;
        }
        if let Some(v) = out.violation {
            s.violations += 1;
            s.note(k, &v);
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
