//! The daemon's root-cause diagnosis (issue 9): every signal medic has per
//! service, bucketed in time, ranked with medic-rca along the `depends_on`
//! graph, fed to the engine as `Input::Diagnosis` before the probe report
//! that follows.
//!
//! Signals per service, each with its own history:
//! - `latency`: the worst latency of its probes in the bucket (ms, bad up);
//! - `availability`: the share of its probe runs that passed (bad down);
//! - one per signal rule of the service (`signals:`, Prometheus, scrape or
//!   log), named after the rule: the rule's value (its worst series) per
//!   evaluation, bad in the direction of its check (`above` up, `below`
//!   down, both or a detector either way).
//!
//! Virtual probes (signal rules, Alertmanager alerts) count in neither
//! `latency` nor `availability`: their evidence is the rule's own value.
//!
//! Bounded: at most [`MAX_SIGNALS_PER_SERVICE`] signals per service (latency
//! and availability first, then rules in the order their first value
//! arrives; later ones are ignored and logged once), each at most
//! `HISTORY + WINDOW` buckets; one diagnosis per bucket; a report only when
//! the top hypothesis changes.
use std::collections::VecDeque;

use medic_config::Config;
use medic_core::{DiagnosisReport, Hypothesis, MonoTime, ProbeReport};
use medic_rca::{beta_mean, diagnose, evidence_match, Confidence, Direction, Params, Signal};
use medic_rca::{Diagnosis, Topology};

/// Bucket length: a probe every 250 ms fills a bucket with two samples.
pub const STEP_MS: u64 = 500;
/// Buckets of normal history kept before the window.
pub const HISTORY: usize = 240;
/// Buckets judged.
pub const WINDOW: usize = 8;
/// Most signals kept per service (`latency`, `availability` and up to six
/// signal rules).
pub const MAX_SIGNALS_PER_SERVICE: usize = 8;
/// Prior when no pattern matches.
const NO_PATTERN_PRIOR: f64 = 0.5;

/// How the samples of one bucket become its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Agg {
    Max,
    Min,
    Mean,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    at: u64,
    max: f64,
    min: f64,
    sum: f64,
    n: u32,
}

/// One signal of one service: its buckets, oldest first.
#[derive(Debug, Clone)]
struct Series {
    name: String,
    direction: Direction,
    agg: Agg,
    buckets: VecDeque<Bucket>,
}

impl Series {
    fn new(name: &str, direction: Direction) -> Series {
        Series {
            name: name.to_string(),
            direction,
            agg: match direction {
                Direction::Up => Agg::Max,
                Direction::Down => Agg::Min,
                Direction::Both => Agg::Mean,
            },
            buckets: VecDeque::new(),
        }
    }

    fn push(&mut self, at: u64, v: f64) {
        if !v.is_finite() {
            return;
        }
        match self.buckets.back_mut() {
            Some(b) if b.at == at => {
                b.max = b.max.max(v);
                b.min = b.min.min(v);
                b.sum += v;
                b.n = b.n.saturating_add(1);
            }
            _ => {
                self.buckets.push_back(Bucket {
                    at,
                    max: v,
                    min: v,
                    sum: v,
                    n: 1,
                });
                while self.buckets.len() > HISTORY + WINDOW {
                    self.buckets.pop_front();
                }
            }
        }
    }

    fn value(&self, b: &Bucket) -> f64 {
        match self.agg {
            Agg::Max => b.max,
            Agg::Min => b.min,
            Agg::Mean => b.sum / f64::from(b.n.max(1)),
        }
    }
}

pub struct RcaState {
    topo: Topology,
    names: Vec<String>,
    /// Service name → its index in `names` (a look-up per probe report, not
    /// a scan over every service).
    index: std::collections::HashMap<String, usize>,
    /// Entry services: nobody calls them (the symptoms users see).
    entries: Vec<usize>,
    /// Per service, its real probes (not signal rules or alerts).
    probes: Vec<Vec<String>>,
    /// The pattern library (shipped + operator files).
    patterns: Vec<medic_config::Pattern>,
    /// Learned (pattern, action) → (successes, failures), from the store.
    learned: std::collections::BTreeMap<(String, String), (u32, u32)>,
    /// Per service, its remediations (the pair's action).
    remediations: Vec<Vec<medic_core::Remediation>>,
    /// The last reported top hypothesis: (service, pattern).
    top: Option<(String, String)>,
    /// Per service, the last action run on it.
    last_action: std::collections::BTreeMap<String, String>,
    /// Per service, its signals (at most [`MAX_SIGNALS_PER_SERVICE`]).
    series: Vec<Vec<Series>>,
    /// Signals ignored over the cap (service, name), logged once each.
    over_cap: std::collections::BTreeSet<(usize, String)>,
    last_bucket: Option<u64>,
    last_key: Option<String>,
    /// While a cause is diagnosed: the first bucket of its window. The
    /// baseline stays the history before it, so a long fault does not become
    /// its own normal.
    episode: Option<u64>,
}

impl RcaState {
    /// `None` when the config has no `depends_on` (nothing to rank across).
    pub fn new(cfg: &Config) -> Option<RcaState> {
        if cfg.dependencies.is_empty() {
            return None;
        }
        let names: Vec<String> = cfg.services.iter().map(|s| s.name.clone()).collect();
        let idx = |n: &str| names.iter().position(|x| x == n);
        let edges: Vec<(usize, usize)> = cfg
            .dependencies
            .iter()
            .filter_map(|d| Some((idx(&d.from)?, idx(&d.to)?)))
            .collect();
        let topo = Topology::new(names.clone(), &edges).ok()?;
        let entries = (0..names.len())
            .filter(|&v| !edges.iter().any(|&(_, b)| b == v))
            .collect();
        let patterns = cfg
            .patterns(std::path::Path::new(""))
            .or_else(|_| medic_config::load_patterns(&[]))
            .unwrap_or_default();
        let remediations = names
            .iter()
            .map(|n| {
                cfg.engine
                    .services
                    .iter()
                    .find(|s| &s.name == n)
                    .map(|s| s.remediations.clone())
                    .unwrap_or_default()
            })
            .collect();
        let probes = cfg
            .services
            .iter()
            .map(|s| s.probes.iter().map(|p| p.name.clone()).collect())
            .collect();
        let series = names
            .iter()
            .map(|_| {
                vec![
                    Series::new("latency", Direction::Up),
                    Series::new("availability", Direction::Down),
                ]
            })
            .collect();
        Some(RcaState {
            patterns,
            learned: std::collections::BTreeMap::new(),
            remediations,
            top: None,
            last_action: std::collections::BTreeMap::new(),
            topo,
            probes,
            series,
            over_cap: std::collections::BTreeSet::new(),
            index: names
                .iter()
                .enumerate()
                .rev()
                .map(|(i, n)| (n.clone(), i))
                .collect(),
            names,
            entries,
            last_bucket: None,
            last_key: None,
            episode: None,
        })
    }

    /// Replaces the accepted candidate patterns in the library (at start
    /// and whenever the set of accepted candidates in the store changes).
    pub fn set_accepted(&mut self, accepted: Vec<medic_config::Pattern>) {
        self.patterns.retain(|p| p.service.is_none());
        self.patterns.extend(accepted);
    }

    /// Names of the accepted candidate patterns loaded.
    pub fn accepted_names(&self) -> Vec<String> {
        self.patterns
            .iter()
            .filter(|p| p.service.is_some())
            .map(|p| p.name.clone())
            .collect()
    }

    /// Loads learned counts (from the store at start).
    pub fn load_learned(&mut self, rows: Vec<(String, String, u32, u32)>) {
        for (p, a, s, f) in rows {
            self.learned.insert((p, a), (s, f));
        }
    }

    /// An action ran on `service`.
    pub fn note_action(&mut self, service: &str, action: &str) {
        if self.index.contains_key(service) {
            self.last_action
                .insert(service.to_string(), action.to_string());
        }
    }

    /// The (pattern, action) pair a verified outcome on `service` belongs to:
    /// the diagnosed cause's pattern and the last action run on it.
    pub fn outcome_pair(&self, service: &str) -> Option<(String, String)> {
        let (top, pattern) = self.top.as_ref()?;
        if top != service {
            return None;
        }
        Some((pattern.clone(), self.last_action.get(service)?.clone()))
    }

    /// One outcome, in memory.
    pub fn learn(&mut self, pattern: &str, action: &str, success: bool) {
        let e = self
            .learned
            .entry((pattern.to_string(), action.to_string()))
            .or_insert((0, 0));
        if success {
            e.0 = e.0.saturating_add(1);
        } else {
            e.1 = e.1.saturating_add(1);
        }
    }

    /// Records a probe report (a real probe's latency and pass/fail; a
    /// virtual probe's report is not evidence here); when a new bucket
    /// begins, diagnoses the completed ones and returns a report if the top
    /// hypothesis changed.
    pub fn observe(&mut self, now: MonoTime, r: &ProbeReport) -> Option<DiagnosisReport> {
        let svc = *self.index.get(r.service.as_str())?;
        let bucket = now.as_millis() / STEP_MS;
        if self.probes[svc].contains(&r.probe) {
            let ms = r.latency.as_secs_f64() * 1e3;
            self.record(svc, "latency", Direction::Up, bucket, ms);
            let up = if r.ok { 1.0 } else { 0.0 };
            self.record(svc, "availability", Direction::Down, bucket, up);
        }
        self.tick(bucket)
    }

    /// Records a signal rule's value (`medic_signal::SignalSample`) as the
    /// service's signal named after the rule; diagnoses like [`Self::observe`].
    pub fn sample(
        &mut self,
        now: MonoTime,
        service: &str,
        rule: &str,
        value: f64,
        direction: Direction,
    ) -> Option<DiagnosisReport> {
        let svc = *self.index.get(service)?;
        let bucket = now.as_millis() / STEP_MS;
        self.record(svc, rule, direction, bucket, value);
        self.tick(bucket)
    }

    /// The signals kept for `service`, by name.
    #[cfg(test)]
    pub fn signal_names(&self, service: &str) -> Vec<String> {
        self.names
            .iter()
            .position(|n| n == service)
            .map(|i| self.series[i].iter().map(|s| s.name.clone()).collect())
            .unwrap_or_default()
    }

    fn record(&mut self, svc: usize, name: &str, dir: Direction, bucket: u64, v: f64) {
        let list = &mut self.series[svc];
        if let Some(s) = list.iter_mut().find(|s| s.name == name) {
            s.push(bucket, v);
            return;
        }
        if list.len() >= MAX_SIGNALS_PER_SERVICE {
            if self.over_cap.len() < 1024 && self.over_cap.insert((svc, name.to_string())) {
                tracing::warn!(
                    service = %self.names[svc],
                    signal = %name,
                    limit = MAX_SIGNALS_PER_SERVICE,
                    "root-cause ranking: too many signals for this service; ignoring this one"
                );
            }
            return;
        }
        let mut s = Series::new(name, dir);
        s.push(bucket, v);
        list.push(s);
    }

    /// When `bucket` is a new one, diagnoses the completed ones; a report
    /// when the top hypothesis changed.
    fn tick(&mut self, bucket: u64) -> Option<DiagnosisReport> {
        if self.last_bucket.is_some_and(|b| b >= bucket) {
            return None;
        }
        self.last_bucket = Some(bucket);
        let report = self.diagnose(bucket);
        let key = report.hypotheses.first().map(|h| {
            format!(
                "{} {} {} {:?}",
                h.service,
                h.signal,
                h.confidence / 10,
                h.victims
            )
        });
        if key == self.last_key {
            return None;
        }
        self.last_key = key;
        Some(report)
    }

    /// Diagnoses the buckets before `bucket` (the current one is incomplete).
    fn diagnose(&mut self, bucket: u64) -> DiagnosisReport {
        let end = bucket; // exclusive
        let Some(split) = end.checked_sub(WINDOW as u64) else {
            return DiagnosisReport::default();
        };
        // History ends where the current episode began (or at the window).
        let hist_end = self.episode.map_or(split, |e| e.min(split));
        let start = hist_end.saturating_sub(HISTORY as u64);
        if hist_end <= start {
            return DiagnosisReport::default();
        }
        let hlen = (hist_end - start) as usize;
        // Every signal of every service, in service order.
        let mut dense: Vec<Dense<'_>> = Vec::new();
        for (node, list) in self.series.iter().enumerate() {
            for sr in list {
                let mut h = vec![f64::NAN; hlen];
                let mut w = vec![f64::NAN; WINDOW];
                for b in &sr.buckets {
                    let v = sr.value(b);
                    if b.at >= start && b.at < hist_end {
                        h[(b.at - start) as usize] = v;
                    } else if b.at >= split && b.at < end {
                        w[(b.at - split) as usize] = v;
                    }
                }
                // A gauge keeps its last observed value until the next one (a
                // slow probe leaves buckets empty), for at most FILL buckets.
                fill(&mut h);
                let last = h.iter().rev().take(FILL).find(|v| v.is_finite()).copied();
                if let (Some(l), Some(first)) = (last, w.first_mut()) {
                    if first.is_nan() {
                        *first = l;
                    }
                }
                fill(&mut w);
                dense.push((node, sr.name.as_str(), sr.direction, h, w));
            }
        }
        let signals: Vec<Signal<'_>> = dense
            .iter()
            .map(|(node, name, direction, h, w)| Signal {
                node: *node,
                name,
                direction: *direction,
                history: h,
                recent: w,
            })
            .collect();
        let p = Params::default();
        // The entry's signal with a symptom whose diagnosis is most certain.
        let mut best: Option<(Diagnosis, usize, f64)> = None;
        for &e in &self.entries {
            for (t, s) in signals.iter().enumerate() {
                if s.node != e {
                    continue;
                }
                let Ok(d) = diagnose(&self.topo, &signals, Some(t), &p) else {
                    continue;
                };
                if d.candidates.is_empty() {
                    continue;
                }
                let ev = evidence_match(&d);
                if best.as_ref().is_none_or(|(_, _, b)| ev > *b) {
                    best = Some((d, e, ev));
                }
            }
        }
        let Some((d, entry, _)) = best else {
            self.episode = None;
            return DiagnosisReport::default();
        };
        if self.episode.is_none() {
            self.episode = Some(split);
        }
        let learned = |pattern: &str, node: usize, signal: &str| {
            let (s, f) = self
                .remediations
                .get(node)
                .and_then(|r| action_for(r, signal))
                .and_then(|a| self.learned.get(&(pattern.to_string(), a)).copied())
                .unwrap_or((0, 0));
            beta_mean(9.0, 1.0, s, f)
        };
        let names: Vec<&str> = signals.iter().map(|s| s.name).collect();
        let report = hypotheses(&self.topo, &d, entry, &names, &self.patterns, &learned);
        // Keep the cause's pattern while the episode lasts (outcomes arrive
        // after the diagnosis may have cleared).
        if let Some(h) = report.hypotheses.first() {
            self.top = Some((h.service.clone(), h.pattern.clone()));
        }
        report
    }
}

/// The action a condition on `signal` runs (the learned pair's action):
/// `latency` → the `slow` remediation; a signal rule → the remediation of
/// its virtual probe; otherwise (and as a fallback) the first `failing` one.
fn action_for(rems: &[medic_core::Remediation], signal: &str) -> Option<String> {
    let slow = medic_core::Condition::Slow;
    let own = if signal == "latency" {
        rems.iter().find(|r| r.condition == slow)
    } else {
        rems.iter().find(|r| r.probe == signal)
    };
    own.or_else(|| rems.iter().find(|r| r.condition != slow))
        .map(|r| r.action.clone())
}

/// One signal laid out for a diagnosis: service, name, direction, history,
/// window.
type Dense<'a> = (usize, &'a str, Direction, Vec<f64>, Vec<f64>);

/// Most consecutive empty buckets filled with the last observed value.
const FILL: usize = 4;

fn fill(v: &mut [f64]) {
    let mut last = None;
    let mut gap = 0;
    for x in v.iter_mut() {
        if x.is_finite() {
            last = Some(*x);
            gap = 0;
        } else if let Some(l) = last {
            gap += 1;
            if gap <= FILL {
                *x = l;
            }
        }
    }
}

/// Turns a ranking into hypotheses with their confidence parts.
///
/// `signal_names[i]` is the name of the signal `i` of the diagnosis (a
/// candidate's `signal`).
///
/// The pattern: the first whose first symptom is the candidate's signal
/// (`latency`, `availability`, a rule's name) on the candidate itself and
/// that expects symptoms on its callers when the candidate is not the entry
/// (`dependency_slow`, `dependency_down`), or none when it is.
pub fn hypotheses(
    topo: &Topology,
    d: &Diagnosis,
    entry: usize,
    signal_names: &[&str],
    patterns: &[medic_config::Pattern],
    learned_for: &dyn Fn(&str, usize, &str) -> f64,
) -> DiagnosisReport {
    // An accepted candidate pattern learned on this very service comes
    // first; then the library's general patterns.
    let pattern_for = |own: bool, service: &str, signal: &str| {
        let fits = |p: &&medic_config::Pattern| {
            p.matches(signal, medic_config::On::SelfNode)
                && own != p.symptoms.iter().any(|s| s.on == medic_config::On::Callers)
        };
        // (learned from this service's own incidents: whether its callers
        // suffer too is not part of it)
        patterns
            .iter()
            .filter(|p| p.service.as_deref() == Some(service))
            .find(|p| p.matches(signal, medic_config::On::SelfNode))
            .or_else(|| patterns.iter().filter(|p| p.service.is_none()).find(fits))
    };
    let total: f64 = d
        .candidates
        .iter()
        .filter(|c| c.root)
        .map(|c| c.score.max(0.0))
        .sum();
    let hyps = d
        .candidates
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let evidence = if i == 0 {
                evidence_match(d)
            } else if total > 0.0 {
                (c.score.max(0.0) / total * c.explains * if c.root { 1.0 } else { 0.5 })
                    .clamp(0.0, 1.0)
            } else {
                0.0
            };
            let signal = signal_names.get(c.signal).copied().unwrap_or("latency");
            let p = pattern_for(c.node == entry, topo.name(c.node), signal);
            let prior = p.map_or(NO_PATTERN_PRIOR, |p| p.prior);
            let pattern = p.map_or("unmatched", |p| p.name.as_str());
            let conf = Confidence::new(prior, evidence, learned_for(pattern, c.node, signal));
            Hypothesis {
                service: topo.name(c.node).to_string(),
                signal: signal.into(),
                pattern: pattern.into(),
                confidence: conf.value,
                prior: conf.prior,
                evidence: conf.evidence,
                learned: conf.learned,
                victims: c.victims.iter().map(|&v| topo.name(v).to_string()).collect(),
                evidence_text: format!(
                    "{signal} z {:.1} over threshold {:.1} from step {}; explains {:.0}% of anomalous services{}{}",
                    c.z,
                    c.threshold,
                    c.onset,
                    c.explains * 100.0,
                    if c.root { "; nothing it calls is anomalous" } else { "; something it calls is anomalous too" },
                    if c.onset_ok { "" } else { "; started after the symptom" },
                ),
            }
        })
        .collect();
    DiagnosisReport { hypotheses: hyps }
}

/// An accepted candidate pattern (issue 9) as a pattern of the library:
/// named `candidate-ID`, scoped to the service whose incident it was learned
/// from, with the human's action (tier medium) and the no-pattern prior. Its
/// symptom is the incident's trigger: a `... slow` trigger is a latency
/// anomaly of the service itself, anything else its availability.
pub fn candidate_pattern(c: &medic_store::CandidatePattern) -> medic_config::Pattern {
    let signal = if c.trigger.trim_end().ends_with("slow") {
        "latency"
    } else {
        "availability"
    };
    medic_config::Pattern {
        name: format!("candidate-{}", c.id),
        cause: if c.note.trim().is_empty() {
            format!(
                "{} on {}, resolved by {} ({})",
                c.trigger, c.service, c.action, c.by
            )
        } else {
            c.note.clone()
        },
        symptoms: vec![medic_config::Symptom {
            signal: signal.into(),
            on: medic_config::On::SelfNode,
            order: None,
            within: None,
        }],
        actions: vec![medic_config::PatternAction {
            action: c.action.clone(),
            tier: medic_core::Risk::Medium,
        }],
        prior: NO_PATTERN_PRIOR,
        source: format!("candidate #{} (accepted)", c.id),
        service: Some(c.service.clone()),
    }
}

/// The accepted candidates of `all`, as patterns.
pub fn accepted_patterns(all: &[medic_store::CandidatePattern]) -> Vec<medic_config::Pattern> {
    all.iter()
        .filter(|c| c.status == "accepted")
        .map(candidate_pattern)
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn candidate(
        id: i64,
        service: &str,
        trigger: &str,
        status: &str,
    ) -> medic_store::CandidatePattern {
        medic_store::CandidatePattern {
            id,
            incident: format!("inc-{id}"),
            service: service.into(),
            trigger: trigger.into(),
            action: "flush_cache".into(),
            by: "alice".into(),
            note: "cache went cold".into(),
            status: status.into(),
            created_at: String::new(),
        }
    }

    /// web → api → db, each with an HTTP probe `work` and a Prometheus rule
    /// of kind `errors`; db also has a rule of its own kind, `queue_depth`.
    fn chain() -> RcaState {
        let svc = |name: &str, deps: &str| {
            format!(
                "  {name}:\n{deps}    probes:\n      work:\n        http: {{ url: http://127.0.0.1:1/work }}\n"
            )
        };
        let rule = |name: &str, service: &str, kind: &str| {
            format!(
                "    {name}:\n      service: {service}\n      source: prom\n      query: q\n      above: 100\n{kind}"
            )
        };
        let text = format!(
            "services:\n{}{}{}signals:\n  sources:\n    prom: {{ prometheus: {{ url: 'http://127.0.0.1:9090' }} }}\n  rules:\n{}{}{}{}",
            svc("web", "    depends_on: [api]\n"),
            svc("api", "    depends_on: [db]\n"),
            svc("db", ""),
            rule("web_errors", "web", "      kind: errors\n"),
            rule("api_errors", "api", "      kind: errors\n"),
            rule("db_errors", "db", "      kind: errors\n"),
            rule("db_queue", "db", ""),
        );
        let cfg = medic_config::parse("medic.yaml", &text).unwrap_or_else(|e| panic!("{e}"));
        RcaState::new(&cfg).unwrap()
    }

    fn report(service: &str, ok: bool, ms: u64) -> ProbeReport {
        ProbeReport {
            service: service.into(),
            probe: "work".into(),
            ok,
            latency: std::time::Duration::from_millis(ms),
            failure: (!ok).then_some(medic_core::ProbeFailure::BadStatus(502)),
            detail: String::new(),
        }
    }

    /// Drives `buckets` buckets of 2 probe runs per service and one sample
    /// of each rule (from `sample(bucket, service, kind)`), returning the
    /// last report that named a cause.
    fn drive(
        r: &mut RcaState,
        from: u64,
        buckets: u64,
        probe: &dyn Fn(u64, &str) -> (bool, u64),
        sample: &dyn Fn(u64, &str, &str) -> Option<f64>,
    ) -> Option<DiagnosisReport> {
        let mut last = None;
        let mut keep = |d: Option<DiagnosisReport>| {
            if let Some(d) = d.filter(|d| !d.hypotheses.is_empty()) {
                last = Some(d);
            }
        };
        for b in from..from + buckets {
            for half in 0..2 {
                let now = MonoTime::from_millis(b * STEP_MS + half * (STEP_MS / 2));
                for svc in ["web", "api", "db"] {
                    let (ok, ms) = probe(b, svc);
                    keep(r.observe(now, &report(svc, ok, ms + (b % 3))));
                }
            }
            let now = MonoTime::from_millis(b * STEP_MS + STEP_MS / 2 + 1);
            for (svc, kind) in [
                ("web", "errors"),
                ("api", "errors"),
                ("db", "errors"),
                ("db", "db_queue"),
            ] {
                if let Some(v) = sample(b, svc, kind) {
                    keep(r.sample(now, svc, kind, v, Direction::Up));
                }
            }
        }
        last
    }

    #[test]
    fn every_signal_has_its_own_history_and_the_count_is_capped() {
        let mut r = chain();
        let healthy = |_: u64, _: &str| (true, 10);
        let quiet = |b: u64, _: &str, _: &str| Some(1.0 + (b % 2) as f64);
        assert!(drive(&mut r, 0, 40, &healthy, &quiet).is_none());
        assert_eq!(
            r.signal_names("db"),
            ["latency", "availability", "errors", "db_queue"]
        );
        assert_eq!(r.signal_names("web"), ["latency", "availability", "errors"]);
        // A virtual probe's report (a rule's) is not probe evidence.
        let mut v = report("db", false, 0);
        v.probe = "db_queue".into();
        let _ = r.observe(MonoTime::from_millis(41 * STEP_MS), &v);
        let n = r.series[2][1].buckets.len();
        assert_eq!(r.series[2][1].buckets.back().map(|b| b.min), Some(1.0));
        // Capped: more kinds than MAX_SIGNALS_PER_SERVICE are ignored.
        for i in 0..20 {
            let _ = r.sample(
                MonoTime::from_millis(41 * STEP_MS),
                "db",
                &format!("k{i}"),
                1.0,
                Direction::Up,
            );
        }
        assert_eq!(r.signal_names("db").len(), MAX_SIGNALS_PER_SERVICE);
        assert_eq!(r.series[2][1].buckets.len(), n);
        // Bounded history.
        let _ = drive(&mut r, 42, (HISTORY + WINDOW) as u64 + 10, &healthy, &quiet);
        assert!(r
            .series
            .iter()
            .flatten()
            .all(|s| s.buckets.len() <= HISTORY + WINDOW));
    }

    #[test]
    fn failing_calls_rank_the_service_that_fails_first_by_availability() {
        let mut r = chain();
        let quiet = |b: u64, _: &str, _: &str| Some(1.0 + (b % 2) as f64);
        // Normal history: every probe passes, latencies ~10 ms.
        let healthy = |_: u64, _: &str| (true, 10);
        assert!(drive(&mut r, 0, 60, &healthy, &quiet).is_none());
        // db fails; api and web fail because their call to it does. Latency
        // does not change (a failed call answers fast).
        let failing = |_: u64, _: &str| (false, 10);
        let d = drive(&mut r, 60, 12, &failing, &quiet).expect("a diagnosis");
        let top = &d.hypotheses[0];
        assert_eq!(
            (top.service.as_str(), top.signal.as_str()),
            ("db", "availability"),
            "{d:?}"
        );
        assert_eq!(top.pattern, "dependency_down");
        assert!(
            top.victims.contains(&"web".to_string()) && top.victims.contains(&"api".to_string()),
            "{top:?}"
        );
    }

    #[test]
    fn a_cause_seen_only_in_a_prometheus_series_is_ranked() {
        let mut r = chain();
        let healthy = |_: u64, _: &str| (true, 10);
        let quiet = |b: u64, _: &str, _: &str| Some(1.0 + (b % 2) as f64);
        assert!(drive(&mut r, 0, 60, &healthy, &quiet).is_none());
        // The error rates (rules of kind `errors`) rise on db, then on its
        // callers; every probe keeps passing at its usual latency.
        let errors = |b: u64, svc: &str, kind: &str| {
            let base = 1.0 + (b % 2) as f64;
            Some(match (svc, kind) {
                ("db", "errors") => base + 50.0,
                (_, "errors") if b > 61 => base + 40.0,
                _ => base,
            })
        };
        let d = drive(&mut r, 60, 12, &healthy, &errors).expect("a diagnosis");
        let top = &d.hypotheses[0];
        assert_eq!(
            (top.service.as_str(), top.signal.as_str()),
            ("db", "errors"),
            "{d:?}"
        );
        assert!(top.victims.contains(&"web".to_string()), "{top:?}");
        assert!(top.evidence_text.starts_with("errors z"), "{top:?}");
    }

    #[test]
    fn only_accepted_candidates_become_patterns_scoped_to_their_service() {
        let all = [
            candidate(1, "api", "work slow", "accepted"),
            candidate(2, "api", "healthz failing", "candidate"),
            candidate(3, "db", "healthz failing", "rejected"),
            candidate(4, "db", "healthz failing", "accepted"),
        ];
        let p = accepted_patterns(&all);
        assert_eq!(p.len(), 2);
        assert_eq!(p[0].name, "candidate-1");
        assert_eq!(p[0].service.as_deref(), Some("api"));
        assert!(p[0].matches("latency", medic_config::On::SelfNode));
        assert_eq!(p[0].actions[0].action, "flush_cache");
        assert_eq!(p[0].cause, "cache went cold");
        assert!(p[1].matches("availability", medic_config::On::SelfNode));
    }

    #[test]
    fn a_latency_diagnosis_of_that_service_names_the_accepted_pattern() {
        // web -> api -> db; api is slow and nothing it calls is.
        let names = vec!["web".to_string(), "api".to_string(), "db".to_string()];
        let topo = Topology::new(names, &[(0, 1), (1, 2)]).unwrap();
        let history: Vec<f64> = (0..60).map(|i| 10.0 + f64::from(i % 3)).collect();
        let recent = [vec![210.0; 8], vec![200.0; 8], vec![10.0; 8]];
        let signals: Vec<Signal<'_>> = recent
            .iter()
            .enumerate()
            .map(|(node, w)| Signal {
                node,
                name: "latency",
                direction: Direction::Up,
                history: &history,
                recent: w,
            })
            .collect();
        let d = diagnose(&topo, &signals, Some(0), &Params::default()).unwrap();
        let mut lib = medic_config::load_patterns(&[]).unwrap();
        let rank = |lib: &[medic_config::Pattern]| {
            hypotheses(&topo, &d, 0, &["latency"; 3], lib, &|_, _, _| 0.9).hypotheses[0].clone()
        };
        let before = rank(&lib);
        assert_eq!(before.service, "api");
        assert_eq!(before.pattern, "dependency_slow");
        lib.extend(accepted_patterns(&[candidate(
            7,
            "api",
            "work slow",
            "accepted",
        )]));
        let after = rank(&lib);
        assert_eq!(after.service, "api");
        assert_eq!(after.pattern, "candidate-7");
        // Scoped: a candidate learned on db does not name api's diagnosis.
        let mut other = medic_config::load_patterns(&[]).unwrap();
        other.extend(accepted_patterns(&[candidate(
            8,
            "db",
            "work slow",
            "accepted",
        )]));
        assert_eq!(rank(&other).pattern, "dependency_slow");
    }
}
