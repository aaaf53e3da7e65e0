//! `medic sim`: the command-line front of the simulator.
//!
//! The binary adds one subcommand: `Sim(medic_sim::cli::SimArgs)` and calls
//! [`run`], exiting with its code.
//!
//! - `medic sim --seed S --scenarios N [--json]`: run scenarios `0..N` of
//!   seed `S` (with medic restarts among their events); prints
//!   `{"seed":S,"scenarios":N,"steps":…,"restarts":…,"violations":0}`.
//! - `--inject tier-from-kind|forget-pauses-on-restore|…` (hidden) plants a
//!   deliberate policy bug to watch the checkers catch it.
//! - `medic sim --seed S --scenario K --trace`: replay scenario `K` exactly,
//!   printing its swarm options and every input and command (the shrunk
//!   event list when it violates an invariant).
//! - `medic sim --bench`: time gate+limit evaluation.
//!
//! Exit codes (TigerBeetle's): 0 no violation, 128 liveness violation,
//! 129 correctness violation, 2 usage error.
use std::io::Write as _;
use std::time::{Duration, Instant};

use medic_core::governance::PolicyFault;
use medic_core::{
    decide, ActionKind, Actor, GateInput, GovernanceConfig, Input, Mode, MonoTime, OperatorCommand,
    ProbeFailure, ProbeReport, Risk, Role,
};

use crate::{run_events, run_scenario, shrink, Profile, Scenario, Summary, Violation};

#[derive(Copy, Clone, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ProfileArg {
    Lite,
    Full,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum InjectArg {
    None,
    SkipConcurrencyLimit,
    IgnorePause,
    HighWithoutApproval,
    TierFromKind,
    ForgetPausesOnRestore,
}

/// Arguments of `medic sim`.
#[derive(Debug, Clone, clap::Args)]
pub struct SimArgs {
    /// Seed of the run (random when absent; always printed).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Number of scenarios to run (scenarios START..START+N).
    #[arg(long, default_value_t = 1000)]
    pub scenarios: u64,
    /// First scenario index of the run.
    #[arg(long, default_value_t = 0)]
    pub start: u64,
    /// Run only this scenario (with --trace: print its trace).
    #[arg(long)]
    pub scenario: Option<u64>,
    /// Print every input and command of the (shrunk) scenario.
    #[arg(long, requires = "scenario")]
    pub trace: bool,
    /// Print one JSON summary line.
    #[arg(long)]
    pub json: bool,
    /// Scenario size.
    #[arg(long, value_enum, default_value_t = ProfileArg::Full)]
    pub profile: ProfileArg,
    /// Worker threads.
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// Print how often each audit kind, reason code and stage occurred.
    #[arg(long)]
    pub coverage: bool,
    /// Time gate+limit evaluation instead of simulating.
    #[arg(long)]
    pub bench: bool,
    /// Inject a deliberate policy bug (to see the checkers fail).
    #[arg(long, value_enum, default_value_t = InjectArg::None, hide = true)]
    pub inject: InjectArg,
}

fn profile(p: ProfileArg) -> Profile {
    match p {
        ProfileArg::Lite => Profile::Lite,
        ProfileArg::Full => Profile::Full,
    }
}

fn fault(i: InjectArg) -> PolicyFault {
    match i {
        InjectArg::None => PolicyFault::None,
        InjectArg::SkipConcurrencyLimit => PolicyFault::SkipConcurrencyLimit,
        InjectArg::IgnorePause => PolicyFault::IgnorePause,
        InjectArg::HighWithoutApproval => PolicyFault::HighWithoutApproval,
        InjectArg::TierFromKind => PolicyFault::TierFromKind,
        InjectArg::ForgetPausesOnRestore => PolicyFault::ForgetPausesOnRestore,
    }
}

fn exit_code(v: &Violation) -> i32 {
    if v.kind.starts_with("liveness") {
        128
    } else {
        129
    }
}

fn json_str(s: &str) -> String {
    serde_json::Value::String(s.to_string()).to_string()
}

/// Run many scenarios on `threads` threads; the summary is the same for any
/// thread count (the first violation is the lowest scenario index).
pub fn run_parallel(
    seed: u64,
    n: u64,
    profile: Profile,
    fault: PolicyFault,
    threads: usize,
) -> Summary {
    run_parallel_range(seed, 0..n, profile, fault, threads)
}

/// [`run_parallel`] over scenarios `range`.
pub fn run_parallel_range(
    seed: u64,
    range: std::ops::Range<u64>,
    profile: Profile,
    fault: PolicyFault,
    threads: usize,
) -> Summary {
    let threads = threads.clamp(1, 64) as u64;
    let (start, n) = (range.start, range.end.saturating_sub(range.start));
    let chunk = n.div_ceil(threads).max(1);
    let parts: Vec<Summary> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let lo = start + (t * chunk).min(n);
                let hi = start + ((t + 1) * chunk).min(n);
                s.spawn(move || crate::run_many(seed, lo..hi, profile, fault, false))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_default())
            .collect()
    });
    let mut total = Summary::default();
    for p in parts {
        total.merge(p);
    }
    total
}

/// Entry point of `medic sim`. Returns the process exit code.
pub fn run(args: &SimArgs) -> anyhow::Result<i32> {
    let mut out = std::io::stdout().lock();
    if args.bench {
        bench(&mut out)?;
        return Ok(0);
    }
    let seed = args.seed.unwrap_or_else(random_seed);
    let profile = profile(args.profile);
    let fault = fault(args.inject);
    if let Some(k) = args.scenario {
        let sc = Scenario::generate(seed, k, profile, fault);
        writeln!(out, "SEED={seed} SCENARIO={k} {}", sc.opts.describe())?;
        let res = run_events(&sc, &sc.events, None);
        let (events, violation) = match &res.violation {
            Some(v) => (shrink(&sc, v.kind), Some(v.clone())),
            None => (sc.events.clone(), None),
        };
        if args.trace {
            let mut trace = String::new();
            let replay = run_events(&sc, &events, Some(&mut trace));
            out.write_all(trace.as_bytes())?;
            if let Some(v) = &replay.violation {
                writeln!(out, "VIOLATION {} at t={}ms: {}", v.kind, v.at_ms, v.detail)?;
            }
        }
        writeln!(
            out,
            "{{\"seed\":{seed},\"scenario\":{k},\"steps\":{},\"actions\":{},\"events\":{},\"shrunk_events\":{},\"violation\":{}}}",
            res.steps,
            res.actions,
            sc.events.len(),
            events.len(),
            violation
                .as_ref()
                .map(|v| format!("{{\"kind\":{},\"at_ms\":{},\"detail\":{}}}", json_str(v.kind), v.at_ms, json_str(&v.detail)))
                .unwrap_or_else(|| "null".into())
        )?;
        return Ok(violation.as_ref().map(exit_code).unwrap_or(0));
    }
    if !args.json {
        writeln!(
            out,
            "SEED={seed} scenarios={} start={} profile={:?} threads={}",
            args.scenarios, args.start, args.profile, args.threads
        )?;
    }
    let started = Instant::now();
    let range = args.start..args.start.saturating_add(args.scenarios);
    let s = run_parallel_range(seed, range, profile, fault, args.threads);
    let secs = started.elapsed().as_secs_f64();
    writeln!(
        out,
        "{{\"seed\":{seed},\"scenarios\":{},\"steps\":{},\"actions\":{},\"incidents\":{},\"restarts\":{},\"violations\":{},\"seconds\":{secs:.1}}}",
        s.scenarios, s.steps, s.actions, s.incidents, s.restarts, s.violations
    )?;
    for (k, kind) in &s.violating {
        writeln!(
            out,
            "{{\"violating_scenario\":{k},\"kind\":{}}}",
            json_str(kind)
        )?;
    }
    if args.coverage {
        for (k, n) in &s.coverage {
            writeln!(out, "coverage {k} {n}")?;
        }
    }
    let Some((k, v)) = s.first else {
        return Ok(0);
    };
    let (sc, _) = run_scenario(seed, k, profile, fault);
    let shrunk = shrink(&sc, v.kind);
    writeln!(
        out,
        "{{\"first_violation\":{{\"seed\":{seed},\"scenario\":{k},\"kind\":{},\"at_ms\":{},\"detail\":{},\"events\":{},\"shrunk_events\":{},\"options\":{},\"replay\":{}}}}}",
        json_str(v.kind),
        v.at_ms,
        json_str(&v.detail),
        sc.events.len(),
        shrunk.len(),
        json_str(&sc.opts.describe()),
        json_str(&format!("medic sim --seed {seed} --scenario {k} --trace --profile {}", match args.profile { ProfileArg::Lite => "lite", ProfileArg::Full => "full" }))
    )?;
    Ok(exit_code(&v))
}

fn random_seed() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    crate::mix(nanos, u64::from(std::process::id()))
}

/// Figures of [`bench`].
#[derive(Clone, Debug)]
pub struct BenchFigures {
    /// Pure [`decide`] per call.
    pub decide_ns: f64,
    /// One planned action judged inside the engine: snapshot of limits and
    /// gates, decision, decision record (a held incident re-planned by a probe).
    pub engine_plan_ns: f64,
}

/// Time gate+limit evaluation: the pure decision, and the whole per-action
/// evaluation inside the engine.
pub fn bench_figures(iterations: u32) -> BenchFigures {
    let cfg = GovernanceConfig::default();
    let mut inputs = Vec::new();
    let mut rng = medic_core::SplitMix64::new(7);
    for _ in 0..1024 {
        inputs.push(GateInput {
            now: MonoTime(1_000_000 + rng.below(1000)),
            mode: [Mode::Conservative, Mode::Aggressive][rng.below(2) as usize],
            risk: [Risk::Low, Risk::Medium, Risk::High][rng.below(3) as usize],
            score: rng.unit(),
            approved: rng.below(2) == 0,
            forced: false,
            continuation: rng.below(4) == 0,
            consecutive_failures: 0,
            autoheal_disabled: false,
            mass_paused: false,
            affected_services: 3,
            paused: rng.below(10) == 0,
            frozen: rng.below(10) == 0,
            target_busy: false,
            lock: None,
            cooldown_until: None,
            inflight_total: rng.below(6) as u32,
            actions_last_hour: rng.below(22) as u32,
            actions_window_frees_at: None,
            budget: None,
            failed_last_hour: rng.below(4) as u32,
            incidents_last_hour: rng.below(7) as u32,
            error_budget: Some(rng.unit()),
            inflight_targets: rng.below(3) as u32,
            total_targets: 10,
            removes_capacity: true,
            headroom: Some(rng.unit()),
            instances: 1 + rng.below(4) as u32,
            canary_capable: true,
            diagnosis: None,
        });
    }
    let started = Instant::now();
    let mut runs = 0u64;
    for i in 0..iterations {
        let d = decide(&cfg, std::hint::black_box(&inputs[(i as usize) & 1023]));
        if matches!(d, medic_core::Decision::Run { .. }) {
            runs += 1;
        }
    }
    std::hint::black_box(runs);
    let decide_ns = started.elapsed().as_nanos() as f64 / f64::from(iterations.max(1));

    // Engine level: 14 services, the fleet paused, one incident re-planned
    // by every failing probe.
    let sc = Scenario::generate(1, 1, Profile::Full, PolicyFault::None);
    let mut cfg = sc.config.clone();
    cfg.mode = Mode::Aggressive;
    for s in cfg.services.iter_mut() {
        s.mode = None;
    }
    let name = cfg.services[0].name.clone();
    let mut e = medic_core::Engine::new(cfg, MonoTime::ZERO);
    let _ = e.operate(
        MonoTime(0),
        &Actor::new("bench", Role::Admin),
        OperatorCommand::Pause {
            service: None,
            kind: None::<ActionKind>,
            duration: None,
            reason: "bench".into(),
        },
    );
    while e.poll_notice().is_some() {}
    let probe = |t: u64| {
        let p = Input::Probe(ProbeReport {
            service: name.clone(),
            probe: "health".into(),
            ok: false,
            latency: Duration::ZERO,
            failure: Some(ProbeFailure::Exited),
            detail: String::new(),
        });
        let _ = t;
        p
    };
    for t in 1..5 {
        e.handle_input(MonoTime(t), probe(t));
    }
    while e.poll_notice().is_some() {}
    while e.poll_command().is_some() {}
    let n = iterations / 20;
    let started = Instant::now();
    for t in 0..n {
        e.handle_input(MonoTime(10 + u64::from(t)), probe(u64::from(t)));
        while e.poll_notice().is_some() {}
        while e.poll_command().is_some() {}
    }
    let engine_plan_ns = started.elapsed().as_nanos() as f64 / f64::from(n.max(1));
    BenchFigures {
        decide_ns,
        engine_plan_ns,
    }
}

fn bench(out: &mut impl std::io::Write) -> anyhow::Result<()> {
    let f = bench_figures(2_000_000);
    writeln!(
        out,
        "{{\"decide_ns\":{:.1},\"engine_plan_ns\":{:.1},\"budget_ns\":50000}}",
        f.decide_ns, f.engine_plan_ns
    )?;
    Ok(())
}
