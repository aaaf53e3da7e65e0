//! Root-cause scenario files (issue 9: "scenario files in, ranked causes
//! and decisions out"). A YAML file describes services with their
//! `depends_on`, per service its signals (a history and a recent window),
//! the symptom to explain, recorded changes, learned outcome counts and the
//! autonomy bands, and what is expected: the ranked causes, the verdict,
//! the top pattern, the band and per service the engine's decision.
//!
//! The runner takes the daemon's own paths: the scenario becomes a medic
//! config (parsed by `medic_config::parse`), its samples go through
//! [`RcaState::sample`] one 500 ms bucket at a time (so every intermediate
//! diagnosis and episode happens as in the daemon), the final diagnosis is
//! [`RcaState::diagnosis_now`], and the decisions come from a
//! `medic_core::Engine` built from the same config, fed the diagnosis
//! (`Input::Diagnosis`) and three failing health checks per service marked
//! `incident: true`. Nothing of the band logic is repeated here.
//!
//! The format is documented in docs/rca.md, "Scenario files".
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use medic_core::{DiagnosisReport, Engine, Input, MonoTime, Notice, ProbeReport, SplitMix64};
use medic_rca::Direction;
use serde::Deserialize;
use serde_saphyr::{Location, Spanned};

use crate::codes::{CliError, Code};
use crate::rca::{RcaState, RecordedChange, HISTORY, MAX_SIGNALS_PER_SERVICE, STEP_MS, WINDOW};

/// Most services in one scenario (a scenario is a small world).
const MAX_SERVICES: usize = 64;

/// The first bucket of a replay: far enough from zero that a change
/// recorded hours before the onset still has a time.
const START_BUCKET: u64 = 100_000;

/// A scenario file that could not be read or understood.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScenarioError {
    pub file: String,
    pub line: u64,
    pub column: u64,
    pub message: String,
}

impl std::fmt::Display for ScenarioError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.file, self.line, self.column, self.message
        )
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawScenario {
    services: Spanned<BTreeMap<String, Spanned<RawService>>>,
    target: Spanned<RawTarget>,
    /// The window step (0-based) at which the fault begins: the time
    /// recorded changes are counted back from.
    #[serde(default)]
    onset: Option<Spanned<u64>>,
    #[serde(default)]
    changes: Vec<Spanned<RawChange>>,
    #[serde(default)]
    learned: Vec<RawLearned>,
    #[serde(default)]
    autonomy: Option<Spanned<RawAutonomy>>,
    expect: Spanned<RawExpect>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawService {
    #[serde(default)]
    depends_on: Vec<Spanned<String>>,
    /// The engine sees its health check fail (an incident opens).
    #[serde(default)]
    incident: bool,
    signals: BTreeMap<String, Spanned<RawSignal>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSignal {
    #[serde(default)]
    direction: Option<Spanned<String>>,
    history: Spanned<RawSeries>,
    recent: Spanned<Vec<f64>>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum RawSeries {
    Values(Vec<f64>),
    Generated(RawGenerator),
}

/// `len` samples of `base` with uniform noise of ±`noise_pct` %, from
/// `seed`; `spikes` overwrite samples from their index on.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGenerator {
    base: f64,
    #[serde(default)]
    noise_pct: f64,
    #[serde(default = "default_len")]
    len: usize,
    #[serde(default)]
    seed: u64,
    #[serde(default)]
    spikes: Vec<RawSpike>,
}

fn default_len() -> usize {
    HISTORY
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSpike {
    at: usize,
    values: Vec<f64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTarget {
    service: String,
    signal: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawChange {
    service: String,
    kind: String,
    /// Seconds before the onset step begins (negative: after).
    seconds_before: f64,
    #[serde(default)]
    version: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLearned {
    pattern: String,
    action: String,
    #[serde(default)]
    successes: u32,
    #[serde(default)]
    failures: u32,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAutonomy {
    act_above: u8,
    armed_from: u8,
    approval_from: u8,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawExpect {
    #[serde(default)]
    ranked: Option<Vec<String>>,
    verdict: String,
    #[serde(default)]
    pattern: Option<String>,
    #[serde(default)]
    band: Option<String>,
    /// A text the top hypothesis's evidence must contain (e.g. the change).
    #[serde(default)]
    evidence_contains: Option<String>,
    #[serde(default)]
    decisions: BTreeMap<String, String>,
}

/// One signal of a service, laid out.
#[derive(Debug, Clone)]
struct SignalSpec {
    name: String,
    direction: Direction,
    history: Vec<f64>,
    recent: Vec<f64>,
}

/// One service of a scenario.
#[derive(Debug)]
struct ServiceSpec {
    name: String,
    /// What it calls.
    deps: Vec<String>,
    /// The engine sees its health check fail.
    incident: bool,
    signals: Vec<SignalSpec>,
}

/// A checked scenario.
#[derive(Debug)]
pub struct Scenario {
    file: String,
    services: Vec<ServiceSpec>,
    target: (String, String),
    onset: u64,
    changes: Vec<(String, String, f64, Option<String>)>,
    learned: Vec<(String, String, u32, u32)>,
    autonomy: Option<(u8, u8, u8)>,
    expect: RawExpect,
}

/// What the daemon's paths made of a scenario.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct Outcome {
    /// Distinct services of the hypotheses, best first.
    pub ranked: Vec<String>,
    /// `cause`, `no_symptom` or `unexplained` for the target signal.
    pub verdict: String,
    /// The top hypothesis's pattern (none without a hypothesis).
    pub pattern: Option<String>,
    /// The top hypothesis's confidence.
    pub confidence: Option<u8>,
    /// The top hypothesis's evidence text.
    pub evidence: Option<String>,
    /// The band of the `rca.diagnosed` record (none without a hypothesis).
    pub band: Option<String>,
    /// Per service: `act`, `act_armed`, `approval`, `escalate`, `held`,
    /// `held_for_approval` (a victim of a cause in the approval band),
    /// `ungated` (acted with no diagnosis gate), `none` (no decision), or
    /// `other:VERDICT/CODE`.
    pub decisions: BTreeMap<String, String>,
}

const DECISIONS: &[&str] = &[
    "act",
    "act_armed",
    "approval",
    "escalate",
    "held",
    "held_for_approval",
    "ungated",
    "deferred",
    "none",
];
const VERDICTS: &[&str] = &["cause", "no_symptom", "unexplained"];
const BANDS: &[&str] = &["act", "act_armed", "approval", "escalate"];

fn at(file: &str, loc: Location, message: impl Into<String>) -> ScenarioError {
    ScenarioError {
        file: file.to_string(),
        line: loc.line(),
        column: loc.column(),
        message: message.into(),
    }
}

/// A decision of the engine (verdict, reason code or `-`) as a scenario
/// names it.
fn classify(verdict: &str, code: &str) -> String {
    match (verdict, code) {
        (_, "upstream_cause") => "held",
        (_, "upstream_cause_approval") => "held_for_approval",
        ("run", "confidence_act") => "act",
        ("run", "confidence_armed") => "act_armed",
        (_, "confidence_approval") => "approval",
        (_, "confidence_escalate") => "escalate",
        ("run", "-") => "ungated",
        ("deferred", _) => "deferred",
        (v, c) => return format!("other:{v}/{c}"),
    }
    .to_string()
}

/// Reads and checks a scenario file; errors name `FILE:LINE:COL`.
pub fn load(path: &Path) -> Result<Scenario, ScenarioError> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| ScenarioError {
        file: file.clone(),
        line: 0,
        column: 0,
        message: format!("cannot read scenario: {e}"),
    })?;
    parse(&file, &text)
}

fn name_ok(n: &str) -> bool {
    !n.is_empty()
        && n.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// Parses and checks scenario text; `file` names it in errors.
pub fn parse(file: &str, text: &str) -> Result<Scenario, ScenarioError> {
    let raw: RawScenario = serde_saphyr::from_str(text).map_err(|e| {
        let loc = e.location();
        let msg = e.without_snippet().to_string();
        let msg = match msg.rfind(" at line ") {
            Some(i) => msg[..i].to_string(),
            None => msg,
        };
        ScenarioError {
            file: file.to_string(),
            line: loc.map_or(0, |l| l.line()),
            column: loc.map_or(0, |l| l.column()),
            message: msg,
        }
    })?;
    let names: Vec<&String> = raw.services.value.keys().collect();
    if names.len() > MAX_SERVICES {
        return Err(at(
            file,
            raw.services.referenced,
            format!(
                "services: {} (at most {MAX_SERVICES} in a scenario)",
                names.len()
            ),
        ));
    }
    let mut services = Vec::new();
    for (name, svc) in &raw.services.value {
        if !name_ok(name) {
            return Err(at(
                file,
                svc.referenced,
                format!("service name {name:?}: letters, digits, '_' and '-' only"),
            ));
        }
        let mut deps = Vec::new();
        for d in &svc.value.depends_on {
            if !names.contains(&&d.value) {
                return Err(at(
                    file,
                    d.referenced,
                    format!("depends_on: unknown service {:?}", d.value),
                ));
            }
            deps.push(d.value.clone());
        }
        let rules = svc
            .value
            .signals
            .keys()
            .filter(|k| *k != "latency" && *k != "availability")
            .count();
        if rules > MAX_SIGNALS_PER_SERVICE - 2 {
            return Err(at(
                file,
                svc.referenced,
                format!(
                    "{name}: {rules} signals besides latency and availability; the daemon keeps {}",
                    MAX_SIGNALS_PER_SERVICE - 2
                ),
            ));
        }
        let mut signals = Vec::new();
        for (sname, sig) in &svc.value.signals {
            let s = &sig.value;
            let fixed = match sname.as_str() {
                "latency" => Some(Direction::Up),
                "availability" => Some(Direction::Down),
                _ => None,
            };
            let direction = match (&s.direction, fixed) {
                (None, Some(d)) => d,
                (Some(d), _) => {
                    let parsed = match d.value.as_str() {
                        "up" => Direction::Up,
                        "down" => Direction::Down,
                        "both" => Direction::Both,
                        other => {
                            return Err(at(
                                file,
                                d.referenced,
                                format!("direction {other:?}: expected up, down or both"),
                            ))
                        }
                    };
                    if fixed.is_some_and(|f| f != parsed) {
                        return Err(at(
                            file,
                            d.referenced,
                            format!(
                                "{sname} is bad {} in the daemon; leave direction out",
                                if sname == "latency" { "up" } else { "down" }
                            ),
                        ));
                    }
                    parsed
                }
                (None, None) => {
                    return Err(at(
                        file,
                        sig.referenced,
                        format!(
                            "signal {sname} of {name}: direction (up, down or both) is required"
                        ),
                    ))
                }
            };
            let history = series(file, &s.history)?;
            if s.recent.value.len() != WINDOW {
                return Err(at(
                    file,
                    s.recent.referenced,
                    format!(
                        "recent: {} samples; the daemon's window is {WINDOW}",
                        s.recent.value.len()
                    ),
                ));
            }
            if let Some(i) = s.recent.value.iter().position(|v| !v.is_finite()) {
                return Err(at(
                    file,
                    s.recent.referenced,
                    format!("recent: sample {i} is not a finite number"),
                ));
            }
            signals.push(SignalSpec {
                name: sname.clone(),
                direction,
                history,
                recent: s.recent.value.clone(),
            });
        }
        services.push(ServiceSpec {
            name: name.clone(),
            deps,
            incident: svc.value.incident,
            signals,
        });
    }
    let t = &raw.target.value;
    let known = services
        .iter()
        .any(|v| v.name == t.service && v.signals.iter().any(|s| s.name == t.signal));
    if !known {
        return Err(at(
            file,
            raw.target.referenced,
            format!(
                "target: {}/{} is no signal of the scenario",
                t.service, t.signal
            ),
        ));
    }
    // The daemon takes only entry services' signals as the symptom.
    if let Some(caller) = services.iter().find(|v| v.deps.contains(&t.service)) {
        return Err(at(
            file,
            raw.target.referenced,
            format!(
                "target: {} is called by {}; the daemon takes symptoms at entry services only",
                t.service, caller.name
            ),
        ));
    }
    let onset = raw.onset.as_ref().map_or(0, |o| o.value);
    if let Some(o) = raw.onset.as_ref().filter(|o| o.value >= WINDOW as u64) {
        return Err(at(
            file,
            o.referenced,
            format!("onset: a window step, 0..{}", WINDOW - 1),
        ));
    }
    let mut changes = Vec::new();
    for c in &raw.changes {
        if !names.contains(&&c.value.service) {
            return Err(at(
                file,
                c.referenced,
                format!("changes: unknown service {:?}", c.value.service),
            ));
        }
        if !c.value.seconds_before.is_finite() {
            return Err(at(
                file,
                c.referenced,
                "changes: seconds_before is not a finite number",
            ));
        }
        changes.push((
            c.value.service.clone(),
            c.value.kind.clone(),
            c.value.seconds_before,
            c.value.version.clone(),
        ));
    }
    if let Some(a) = &raw.autonomy {
        let v = &a.value;
        if !(v.approval_from <= v.armed_from && v.armed_from <= v.act_above && v.act_above <= 100) {
            return Err(at(
                file,
                a.referenced,
                "autonomy: approval_from <= armed_from <= act_above <= 100 is required",
            ));
        }
    }
    let e = &raw.expect;
    let check = |what: &str, v: &str, allowed: &[&str]| {
        if allowed.contains(&v) {
            Ok(())
        } else {
            Err(at(
                file,
                e.referenced,
                format!("expect.{what}: {v:?} is not one of {}", allowed.join(", ")),
            ))
        }
    };
    check("verdict", &e.value.verdict, VERDICTS)?;
    if let Some(b) = &e.value.band {
        check("band", b, BANDS)?;
    }
    for (svc, d) in &e.value.decisions {
        if !names.contains(&svc) {
            return Err(at(
                file,
                e.referenced,
                format!("expect.decisions: unknown service {svc:?}"),
            ));
        }
        check("decisions", d, DECISIONS)?;
    }
    let RawScenario {
        learned,
        autonomy,
        expect,
        target,
        ..
    } = raw;
    Ok(Scenario {
        file: file.to_string(),
        services,
        target: (target.value.service, target.value.signal),
        onset,
        changes,
        learned: learned
            .into_iter()
            .map(|l| (l.pattern, l.action, l.successes, l.failures))
            .collect(),
        autonomy: autonomy.map(|a| (a.value.act_above, a.value.armed_from, a.value.approval_from)),
        expect: expect.value,
    })
}

/// A history: the values as written, or generated.
fn series(file: &str, s: &Spanned<RawSeries>) -> Result<Vec<f64>, ScenarioError> {
    let out = match &s.value {
        RawSeries::Values(v) => v.clone(),
        RawSeries::Generated(g) if g.len > HISTORY => {
            return Err(at(
                file,
                s.referenced,
                format!(
                    "history: len {}; at most {HISTORY} (the daemon's history)",
                    g.len
                ),
            ))
        }
        RawSeries::Generated(g) => {
            let mut rng = SplitMix64::new(g.seed);
            let mut v: Vec<f64> = (0..g.len)
                .map(|_| g.base * (1.0 + g.noise_pct / 100.0 * (2.0 * rng.unit() - 1.0)))
                .collect();
            for sp in &g.spikes {
                for (i, x) in sp.values.iter().enumerate() {
                    match sp.at.checked_add(i).and_then(|k| v.get_mut(k)) {
                        Some(slot) => *slot = *x,
                        None => {
                            return Err(at(
                                file,
                                s.referenced,
                                format!(
                                    "spike at {} runs past the history ({} samples)",
                                    sp.at, g.len
                                ),
                            ))
                        }
                    }
                }
            }
            v
        }
    };
    if out.is_empty() || out.len() > HISTORY {
        return Err(at(
            file,
            s.referenced,
            format!(
                "history: {} samples; 1..={HISTORY} (the daemon's history)",
                out.len()
            ),
        ));
    }
    if let Some(i) = out.iter().position(|v| !v.is_finite()) {
        return Err(at(
            file,
            s.referenced,
            format!("history: sample {i} is not a finite number"),
        ));
    }
    Ok(out)
}

impl Scenario {
    /// The medic config of the scenario: per service one HTTP probe
    /// `work` (never run), a `restart` answering `slow` and `failing`, its
    /// `depends_on`; the autonomy bands; aggressive mode.
    fn config_text(&self) -> String {
        let mut t = String::from("mode: aggressive\nservices:\n");
        for ServiceSpec { name, deps, .. } in &self.services {
            let _ = write!(
                t,
                "  {name}:\n    process: {{ command: [\"true\"] }}\n    depends_on: [{}]\n    probes:\n      work:\n        http: {{ url: \"http://127.0.0.1:1/work\" }}\n        latency: {{ over: 300ms, consecutive: 2 }}\n    actions:\n      restart: {{ restart: {{}} }}\n    remediate:\n      - when: {{ probe: work, condition: slow }}\n        action: restart\n      - when: {{ probe: work, condition: failing }}\n        action: restart\n",
                deps.join(", ")
            );
        }
        if let Some((act, armed, approval)) = self.autonomy {
            let _ = write!(
                t,
                "governance:\n  autonomy: {{ act_above: {act}, armed_from: {armed}, approval_from: {approval} }}\n"
            );
        }
        t
    }

    /// Runs the scenario through the daemon's ranking and the engine.
    pub fn run(&self) -> Result<Outcome, String> {
        let cfg = medic_config::parse(&format!("{} (as config)", self.file), &self.config_text())
            .map_err(|e| e.to_string())?;
        let mut rca = RcaState::new(&cfg)
            .ok_or_else(|| format!("{}: no depends_on, nothing to rank across", self.file))?;
        rca.load_learned(self.learned.clone());
        let hlen = self
            .services
            .iter()
            .flat_map(|v| v.signals.iter().map(|s| s.history.len()))
            .max()
            .unwrap_or(0) as u64;
        let window_start = START_BUCKET + hlen;
        let onset_ms = (window_start + self.onset) * STEP_MS;
        for (service, kind, before, version) in &self.changes {
            let at_ms = onset_ms as f64 - before * 1e3;
            rca.restore_change(
                service,
                RecordedChange {
                    at_ms: at_ms.round() as i64,
                    kind: kind.clone(),
                    version: version.clone(),
                    note: None,
                    by: "scenario".into(),
                },
            );
        }
        // Bucket by bucket, every signal of every service; histories are
        // aligned at their ends.
        let end = window_start + WINDOW as u64;
        for b in START_BUCKET..end {
            let now = MonoTime::from_millis(b * STEP_MS + 1);
            for ServiceSpec { name, signals, .. } in &self.services {
                for s in signals {
                    let v = if b >= window_start {
                        s.recent.get((b - window_start) as usize)
                    } else {
                        let from = window_start - s.history.len() as u64;
                        b.checked_sub(from).and_then(|i| s.history.get(i as usize))
                    };
                    if let Some(v) = v {
                        let _ = rca.sample(now, name, &s.name, *v, s.direction);
                    }
                }
            }
        }
        let now = MonoTime::from_millis(end * STEP_MS);
        let (verdict, report) = rca.diagnosis_now(now, (&self.target.0, &self.target.1));
        let mut out = Outcome {
            verdict: verdict.map_or("unknown", |v| v.name()).to_string(),
            ..Outcome::default()
        };
        for h in &report.hypotheses {
            if !out.ranked.contains(&h.service) {
                out.ranked.push(h.service.clone());
            }
        }
        out.pattern = report.hypotheses.first().map(|h| h.pattern.clone());
        out.confidence = report.hypotheses.first().map(|h| h.confidence);
        out.evidence = report.hypotheses.first().map(|h| h.evidence_text.clone());
        self.decide(cfg.engine, now, report, &mut out);
        Ok(out)
    }

    /// The engine's decisions: the diagnosis first (the daemon reports it
    /// before the probe report that follows), then three failing health
    /// checks of each service with `incident: true`.
    fn decide(
        &self,
        cfg: medic_core::EngineConfig,
        now: MonoTime,
        report: DiagnosisReport,
        out: &mut Outcome,
    ) {
        let mut engine = Engine::new(cfg, now);
        let top = report.hypotheses.first().map(|h| h.service.clone());
        let has_top = top.is_some();
        engine.handle_input(now, Input::Diagnosis(report));
        // The cause's check fails first (its fault began first), then the
        // others' in name order.
        let mut failing: Vec<&String> = self
            .services
            .iter()
            .filter(|s| s.incident)
            .map(|s| &s.name)
            .collect();
        failing.sort_by_key(|n| Some(*n) != top.as_ref());
        for ServiceSpec { name, .. } in &self.services {
            out.decisions.insert(name.clone(), "none".into());
        }
        // Round by round, so no service's incident is complete long before
        // another's.
        for i in 1..=3u64 {
            let t = MonoTime::from_millis(now.as_millis() + i * 1000);
            for name in &failing {
                engine.handle_input(
                    t,
                    Input::Probe(ProbeReport {
                        service: (*name).clone(),
                        probe: "work".into(),
                        ok: false,
                        latency: std::time::Duration::from_millis(5),
                        failure: Some(medic_core::ProbeFailure::BadStatus(502)),
                        detail: String::new(),
                    }),
                );
            }
        }
        // Per service, its first decision that is not a wait (`deferred`),
        // else `deferred`.
        let mut decided: Vec<String> = Vec::new();
        let mut note = |out: &mut Outcome, service: String, verdict: &str, code: &str| {
            if decided.contains(&service) {
                return;
            }
            let d = classify(verdict, code);
            if d != "deferred" {
                decided.push(service.clone());
            }
            out.decisions.insert(service, d);
        };
        while let Some(n) = engine.poll_notice() {
            match n {
                Notice::RootCause { band, .. } if has_top => {
                    out.band = Some(band.as_str().to_string());
                }
                Notice::Decision {
                    service,
                    verdict,
                    reason_code,
                    ..
                } => note(
                    out,
                    service,
                    verdict.as_str(),
                    reason_code.map_or("-", |c| c.as_str()),
                ),
                // A run with no gate of the diagnosis records no decision,
                // only its intent.
                Notice::ActionIntent { service, .. } => note(out, service, "run", "-"),
                Notice::IncidentEscalated {
                    service,
                    reason_code,
                    ..
                } => note(out, service, "escalate", reason_code.as_str()),
                // A victim whose symptom joins the cause's open incident (a
                // diagnosis at or above the armed band) is held back too: it
                // opens no incident of its own, so it gets no decision.
                Notice::IncidentMerged { service, .. } => {
                    note(out, service, "held", "upstream_cause")
                }
                _ => {}
            }
        }
    }

    /// Every difference between the expectation and `got`, each naming the
    /// file.
    pub fn mismatches(&self, got: &Outcome) -> Vec<String> {
        let e = &self.expect;
        let mut out = Vec::new();
        let mut diff = |what: &str, want: String, have: String| {
            if want != have {
                out.push(format!(
                    "{}: {what}: expected {want}, got {have}",
                    self.file
                ));
            }
        };
        if let Some(r) = &e.ranked {
            // The first N as written; `[]` means no hypothesis at all.
            let n = if r.is_empty() { usize::MAX } else { r.len() };
            let have: Vec<String> = got.ranked.iter().take(n).cloned().collect();
            diff("ranked", format!("{r:?}"), format!("{have:?}"));
        }
        diff("verdict", e.verdict.clone(), got.verdict.clone());
        if let Some(p) = &e.pattern {
            diff(
                "pattern",
                p.clone(),
                got.pattern.clone().unwrap_or_else(|| "(none)".into()),
            );
        }
        if let Some(b) = &e.band {
            diff(
                "band",
                b.clone(),
                got.band.clone().unwrap_or_else(|| "(none)".into()),
            );
        }
        if let Some(t) = &e.evidence_contains {
            let have = got.evidence.clone().unwrap_or_default();
            if !have.contains(t.as_str()) {
                diff(
                    "evidence",
                    format!("a text containing {t:?}"),
                    format!("{have:?}"),
                );
            }
        }
        for (svc, want) in &e.decisions {
            let have = got
                .decisions
                .get(svc)
                .cloned()
                .unwrap_or_else(|| "none".into());
            diff(&format!("decision of {svc}"), want.clone(), have);
        }
        out
    }
}

/// The result of one file: what it gave and every mismatch (each naming
/// the file), or why it could not be read or run.
pub fn run_file(path: &Path) -> Result<(Outcome, Vec<String>), String> {
    let s = load(path).map_err(|e| e.to_string())?;
    let got = s.run()?;
    let m = s.mismatches(&got);
    Ok((got, m))
}

/// The `.yaml` files of `dir`, sorted; at most `MAX_FILES`.
fn scenario_files(dir: &Path) -> Result<Vec<std::path::PathBuf>, CliError> {
    let invalid = |m: String| CliError::new(Code::ScenarioInvalid, m);
    let rd = std::fs::read_dir(dir).map_err(|e| invalid(format!("{}: {e}", dir.display())))?;
    let mut files = Vec::new();
    for e in rd {
        let p = e
            .map_err(|e| invalid(format!("{}: {e}", dir.display())))?
            .path();
        if p.extension().is_some_and(|x| x == "yaml") {
            files.push(p);
        }
        if files.len() > MAX_FILES {
            return Err(invalid(format!(
                "{}: more than {MAX_FILES} scenario files",
                dir.display()
            )));
        }
    }
    files.sort();
    if files.is_empty() {
        return Err(invalid(format!(
            "{}: no .yaml scenario file",
            dir.display()
        )));
    }
    Ok(files)
}

/// Most scenario files one run reads.
const MAX_FILES: usize = 1000;

/// `medic eval rca --scenarios DIR [--json]`: every file, pass or fail
/// with each mismatch; E0160 when a file is malformed, E0161 when a file's
/// outcome differs from its expectation.
pub fn run_dir(dir: &Path, json: bool) -> Result<(), CliError> {
    let files = scenario_files(dir)?;
    let (mut passed, mut failed, mut invalid) = (0usize, 0usize, 0usize);
    let mut rows = Vec::new();
    let mut text = String::new();
    for f in &files {
        let name = f.display().to_string();
        match run_file(f) {
            Ok((got, m)) => {
                if m.is_empty() {
                    passed += 1;
                    let _ = writeln!(text, "PASS {name}");
                } else {
                    failed += 1;
                    let _ = writeln!(text, "FAIL {name}");
                    for x in &m {
                        let _ = writeln!(text, "  {x}");
                    }
                }
                rows.push(serde_json::json!({
                    "file": name, "pass": m.is_empty(), "mismatches": m, "got": got,
                }));
            }
            Err(e) => {
                invalid += 1;
                let _ = writeln!(text, "FAIL {name}\n  {e}");
                rows.push(serde_json::json!({"file": name, "pass": false, "error": e}));
            }
        }
    }
    if json {
        let v = serde_json::json!({
            "scenarios": rows, "passed": passed, "failed": failed + invalid,
        });
        println!("{v}");
    } else {
        let _ = writeln!(
            text,
            "{passed} of {} scenario files as expected",
            files.len()
        );
        print!("{text}");
    }
    if invalid > 0 {
        return Err(CliError::new(
            Code::ScenarioInvalid,
            format!("{invalid} scenario file(s) could not be read or run"),
        ));
    }
    if failed > 0 {
        return Err(CliError::new(
            Code::ScenarioFailed,
            format!("{failed} scenario file(s) differ from their expectation"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn dir() -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/rca-scenarios")
    }

    /// Every scenario file in tests/rca-scenarios: all mismatches of all
    /// files are reported together, each with its file.
    #[test]
    fn every_scenario_file_gives_its_expected_causes_and_decisions() {
        let mut files: Vec<_> = std::fs::read_dir(dir())
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
            .collect();
        files.sort();
        let mut problems = Vec::new();
        let mut summary = String::new();
        for f in &files {
            match run_file(f) {
                Ok((got, m)) => {
                    let _ = writeln!(summary, "{}: {got:?}", f.display());
                    problems.extend(m);
                }
                Err(e) => problems.push(e),
            }
        }
        assert!(
            problems.is_empty(),
            "{} mismatch(es):\n{}\n\nwhat each scenario gave:\n{summary}",
            problems.len(),
            problems.join("\n")
        );
        assert!(files.len() >= 10, "{} scenario files", files.len());
    }

    /// No input panics: every shipped file, mutated many ways (a number
    /// replaced by an extreme, a line dropped, the text cut short, a
    /// character swapped), parses to a scenario that runs or to an error.
    #[test]
    fn mutated_scenarios_give_an_answer_or_an_error_never_a_panic() {
        const EXTREMES: &[&str] = &[
            "0",
            "-1",
            "1e308",
            "-1e308",
            "1e-300",
            "18446744073709551615",
            "-9223372036854775808",
            "4294967296",
            ".nan",
            ".inf",
            "\"x\"",
            "[]",
            "{}",
            "~",
        ];
        let mut rng = SplitMix64::new(7);
        let mut pick = |n: usize| rng.below(n.max(1) as u64) as usize;
        let mut runs = 0;
        for entry in std::fs::read_dir(dir()).unwrap() {
            let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
            for _ in 0..24 {
                let lines: Vec<&str> = text.lines().collect();
                let mutated = match pick(4) {
                    0 => {
                        // Replace the k-th number by an extreme.
                        let spans: Vec<(usize, usize)> = {
                            let b = text.as_bytes();
                            let mut v = Vec::new();
                            let mut i = 0;
                            while i < b.len() {
                                if b[i].is_ascii_digit() {
                                    let j = (i..b.len())
                                        .find(|&j| !(b[j].is_ascii_digit() || b[j] == b'.'))
                                        .unwrap_or(b.len());
                                    v.push((i, j));
                                    i = j;
                                } else {
                                    i += 1;
                                }
                            }
                            v
                        };
                        let (a, b) = spans[pick(spans.len())];
                        format!(
                            "{}{}{}",
                            &text[..a],
                            EXTREMES[pick(EXTREMES.len())],
                            &text[b..]
                        )
                    }
                    1 => {
                        let k = pick(lines.len());
                        let mut l = lines.clone();
                        l.remove(k);
                        l.join("\n")
                    }
                    2 => text.chars().take(pick(text.len())).collect(),
                    _ => {
                        let mut c: Vec<char> = text.chars().collect();
                        let k = pick(c.len());
                        c[k] = [':', '[', '{', '-', ' ', '\n', '9', '#'][pick(8)];
                        c.into_iter().collect()
                    }
                };
                if let Ok(s) = parse("fuzz.yaml", &mutated) {
                    let _ = s.run();
                }
                runs += 1;
            }
        }
        assert!(runs >= 240, "{runs}");
    }

    #[test]
    fn a_malformed_scenario_is_an_error_at_file_line_col() {
        // A string where the recent window's numbers belong (line 7).
        let text = "services:\n  web:\n    depends_on: [db]\n    signals:\n      latency:\n        history: [1, 2, 3]\n        recent: [1, 2, x, 4, 5, 6, 7, 8]\n  db:\n    signals: {}\ntarget: { service: web, signal: latency }\nexpect: { verdict: cause }\n";
        let e = parse("bad.yaml", text).unwrap_err();
        assert_eq!((e.file.as_str(), e.line), ("bad.yaml", 7), "{e}");
        assert!(e.column > 0, "{e}");
        assert!(e.to_string().starts_with("bad.yaml:7:"), "{e}");
        // A checked field: an unknown service in depends_on, at its name.
        let text = text
            .replace("depends_on: [db]", "depends_on: [dbx]")
            .replace("x, 4", "3, 4");
        let e = parse("bad.yaml", &text).unwrap_err();
        assert_eq!((e.line, e.column), (3, 18), "{e}");
        assert!(e.message.contains("dbx"), "{e}");
        // A wrong window length, at the list.
        let text = text.replace("[dbx]", "[db]").replace(", 8]", "]");
        let e = parse("bad.yaml", &text).unwrap_err();
        assert_eq!(e.line, 7, "{e}");
        assert!(e.message.contains("window is 8"), "{e}");
        // A target the daemon never takes as a symptom (db is called by web).
        let ok = text.replace(", 7]", ", 7, 8]");
        assert!(parse("ok.yaml", &ok).is_ok());
        let text = ok
            .replace("target: { service: web", "target: { service: db")
            .replace(
                "signals: {}",
                "signals: { latency: { history: [1], recent: [1, 1, 1, 1, 1, 1, 1, 1] } }",
            );
        let e = parse("bad.yaml", &text).unwrap_err();
        assert!(e.message.contains("entry services only"), "{e}");
        assert_eq!(e.line, 10, "{e}");
        // A generated history longer than the daemon keeps, before generating it.
        let text = ok.replace("history: [1, 2, 3]", "history: { base: 1, len: 100000000 }");
        let e = parse("bad.yaml", &text).unwrap_err();
        assert_eq!(e.line, 6, "{e}");
        assert!(e.message.contains("at most 240"), "{e}");
    }
}
