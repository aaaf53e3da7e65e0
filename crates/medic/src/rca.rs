//! The daemon's root-cause diagnosis (issue 9): probe latencies per service,
//! bucketed in time, ranked with medic-rca along the `depends_on` graph, fed
//! to the engine as `Input::Diagnosis` before the probe report that follows.
//!
//! Bounded: per service at most `HISTORY + WINDOW` buckets; one diagnosis per
//! bucket; a report only when the top hypothesis changes.
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
/// Prior when no pattern matches.
const NO_PATTERN_PRIOR: f64 = 0.5;

pub struct RcaState {
    topo: Topology,
    names: Vec<String>,
    /// Entry services: nobody calls them (the symptoms users see).
    entries: Vec<usize>,
    /// The pattern library (shipped + operator files).
    patterns: Vec<medic_config::Pattern>,
    /// Learned (pattern, action) → (successes, failures), from the store.
    learned: std::collections::BTreeMap<(String, String), (u32, u32)>,
    /// Per service, the action a slow condition runs (the pair's action).
    slow_action: Vec<Option<String>>,
    /// The last reported top hypothesis: (service, pattern).
    top: Option<(String, String)>,
    /// Per service, the last action run on it.
    last_action: std::collections::BTreeMap<String, String>,
    /// Per service: (bucket, worst latency in ms) in bucket order.
    series: Vec<VecDeque<(u64, f64)>>,
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
        let slow_action = names
            .iter()
            .map(|n| {
                let spec = cfg.engine.services.iter().find(|s| &s.name == n)?;
                spec.remediations
                    .iter()
                    .find(|r| r.condition == medic_core::Condition::Slow)
                    .map(|r| r.action.clone())
            })
            .collect();
        Some(RcaState {
            patterns,
            learned: std::collections::BTreeMap::new(),
            slow_action,
            top: None,
            last_action: std::collections::BTreeMap::new(),
            topo,
            series: vec![VecDeque::new(); names.len()],
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
        if self.names.iter().any(|n| n == service) {
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

    /// Records a probe report; when a new bucket begins, diagnoses the
    /// completed ones and returns a report if the top hypothesis changed.
    pub fn observe(&mut self, now: MonoTime, r: &ProbeReport) -> Option<DiagnosisReport> {
        let svc = self.names.iter().position(|n| *n == r.service)?;
        let bucket = now.as_millis() / STEP_MS;
        let ms = r.latency.as_secs_f64() * 1e3;
        let s = &mut self.series[svc];
        match s.back_mut() {
            Some((b, v)) if *b == bucket => *v = v.max(ms),
            _ => {
                s.push_back((bucket, ms));
                while s.len() > HISTORY + WINDOW {
                    s.pop_front();
                }
            }
        }
        if self.last_bucket == Some(bucket) {
            return None;
        }
        self.last_bucket = Some(bucket);
        let report = self.diagnose(bucket);
        let key = report
            .hypotheses
            .first()
            .map(|h| format!("{} {} {:?}", h.service, h.confidence / 10, h.victims));
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
        let dense: Vec<(Vec<f64>, Vec<f64>)> = self
            .series
            .iter()
            .map(|s| {
                let mut h = vec![f64::NAN; hlen];
                let mut w = vec![f64::NAN; WINDOW];
                for &(b, v) in s {
                    if b >= start && b < hist_end {
                        h[(b - start) as usize] = v;
                    } else if b >= split && b < end {
                        w[(b - split) as usize] = v;
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
                (h, w)
            })
            .collect();
        let signals: Vec<Signal<'_>> = dense
            .iter()
            .enumerate()
            .map(|(node, (h, w))| Signal {
                node,
                name: "latency",
                direction: Direction::Up,
                history: h,
                recent: w,
            })
            .collect();
        let p = Params::default();
        // The entry with a symptom whose diagnosis is most certain.
        let mut best: Option<(Diagnosis, usize, f64)> = None;
        for &e in &self.entries {
            let Ok(d) = diagnose(&self.topo, &signals, Some(e), &p) else {
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
        let Some((d, entry, _)) = best else {
            self.episode = None;
            return DiagnosisReport::default();
        };
        if self.episode.is_none() {
            self.episode = Some(split);
        }
        let learned = |pattern: &str, node: usize| {
            let (s, f) = self
                .slow_action
                .get(node)
                .cloned()
                .flatten()
                .and_then(|a| self.learned.get(&(pattern.to_string(), a)).copied())
                .unwrap_or((0, 0));
            beta_mean(9.0, 1.0, s, f)
        };
        let report = hypotheses(&self.topo, &d, entry, &self.patterns, &learned);
        // Keep the cause's pattern while the episode lasts (outcomes arrive
        // after the diagnosis may have cleared).
        if let Some(h) = report.hypotheses.first() {
            self.top = Some((h.service.clone(), h.pattern.clone()));
        }
        report
    }
}

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
/// The pattern: the first whose first symptom is a latency anomaly on the
/// candidate itself and that expects symptoms on its callers when the
/// candidate is not the entry (`dependency_slow`), or none when it is.
pub fn hypotheses(
    topo: &Topology,
    d: &Diagnosis,
    entry: usize,
    patterns: &[medic_config::Pattern],
    learned_for: &dyn Fn(&str, usize) -> f64,
) -> DiagnosisReport {
    // An accepted candidate pattern learned on this very service comes
    // first; then the library's general patterns.
    let pattern_for = |own: bool, service: &str| {
        let fits = |p: &&medic_config::Pattern| {
            p.matches("latency", medic_config::On::SelfNode)
                && own != p.symptoms.iter().any(|s| s.on == medic_config::On::Callers)
        };
        // (learned from this service's own incidents: whether its callers
        // suffer too is not part of it)
        patterns
            .iter()
            .filter(|p| p.service.as_deref() == Some(service))
            .find(|p| p.matches("latency", medic_config::On::SelfNode))
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
            let p = pattern_for(c.node == entry, topo.name(c.node));
            let prior = p.map_or(NO_PATTERN_PRIOR, |p| p.prior);
            let pattern = p.map_or("unmatched", |p| p.name.as_str());
            let conf = Confidence::new(prior, evidence, learned_for(pattern, c.node));
            Hypothesis {
                service: topo.name(c.node).to_string(),
                signal: "latency".into(),
                pattern: pattern.into(),
                confidence: conf.value,
                prior: conf.prior,
                evidence: conf.evidence,
                learned: conf.learned,
                victims: c.victims.iter().map(|&v| topo.name(v).to_string()).collect(),
                evidence_text: format!(
                    "latency z {:.1} over threshold {:.1} from step {}; explains {:.0}% of anomalous services{}{}",
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
            hypotheses(&topo, &d, 0, lib, &|_, _| 0.9).hypotheses[0].clone()
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
