//! Root-cause ranking across services (issue 9). Pure: no IO, no clock, no
//! randomness, no hash maps; the same input gives the same ranking.
//!
//! Input: a [`Topology`] (caller → callee edges, so a fault in a callee shows
//! up in its callers: causes flow against the arrows), and per service some
//! [`Signal`]s, each with its own normal `history` and a `recent` window whose
//! indices are aligned time steps across signals. Optionally a target signal:
//! the symptom that was noticed (an SLO violation on the front end).
//!
//! The method ([`diagnose`]), every parameter fixed a priori in [`Params`]:
//! 1. **Anomaly against its own history.** Each signal is scored as a robust
//!    z-score against its history: `(x − median) / scale`, scale `1.4826·MAD`,
//!    falling back to `1.2533·mean absolute deviation` when the MAD is zero
//!    (Iglewicz & Hoaglin's modified z-score), then to a relative floor for a
//!    constant history. One-sided by the signal's [`Direction`]. A signal is
//!    *anomalous* when `persistence` consecutive samples all exceed
//!    `max(anomaly_z, the largest such run in its own history)`: it must be
//!    unprecedented in normal operation, so a heavy-tailed signal does not cry
//!    wolf on its usual spikes. History steps where the target itself had a
//!    persistent symptom (a past incident) are left out of every other
//!    signal's precedent; and a sustained run of `k` > `persistence` samples
//!    is compared with the history's largest `k`-sample run.
//! 2. **Symptom.** With a target, the target's samples at `symptom_z` or more
//!    are the symptom times; without one, nothing is a symptom → no cause.
//!    Only anomalies that overlap the symptom times (± `coincidence` steps)
//!    and lie on the target's dependency closure (what it calls, transitively)
//!    are evidence.
//! 3. **Change at the symptom (drift).** A signal already beyond its
//!    threshold at the window's first step and raised on both sides of the
//!    symptom (before it, outside the `coincidence` lead, and after it) is
//!    judged on `z − level` (the smaller side median): a pre-existing flat
//!    shift is no change at the symptom. Only while the target is quiet on
//!    both sides (each below `symptom_z / 2`).
//! 4. **Graph position, in absolute units.** A candidate is a *root* when
//!    nothing it calls (through symptomatic services) changed, in the same
//!    kind, by at least half as much — compared as change × traffic when both
//!    have a [`VOLUME`] signal (seconds spent and requests lost add up along
//!    calls), else as changes. Traffic is context, never evidence. Across
//!    kinds ([`Lead`], from the pattern library): a callee anomalous in a
//!    kind that leads to the candidate's (a filling queue → its callers'
//!    latency), on a symptomatic path and started no later, makes it no
//!    root ([`diagnose_with_leads`]).
//! 5. **Ranking.** Roots first; then those whose change × traffic covers at
//!    least half of the target's ([`Candidate::cover`]); then the score:
//!    `(1 + explains)·ln(1 + peak/threshold)`, `explains` the share of
//!    anomalous services on a path from the target to the candidate (its
//!    hops symptomatic, or moved at least 1 σ the bad way), halved when it
//!    starts after the symptom, when it is not reached through such hops,
//!    or when, in the target's kind, it was anomalous more than
//!    `coincidence` steps per hop before the symptom while the target
//!    stayed quiet (unfelt).
//!
//! If nothing on the closure is anomalous, the answer is "no cause", which
//! matters as much as naming the right one. So it is when the only anomaly is
//! the target's own signal, for no longer than `persistence` samples: "the
//! target is its own cause" would rest on the symptom alone. With a cause named, the list is
//! filled up to `min_named` services with [`Diagnosis::suspects`]: services
//! at symptom level that are not anomalous, after every candidate.
//!
//! Bounds: at most [`MAX_NODES`] services, [`MAX_SIGNALS`] signals and
//! [`MAX_SAMPLES`] samples per history or window; larger inputs are refused.
#![forbid(unsafe_code)]

pub mod confidence;
mod stats;

use petgraph::graph::{DiGraph, NodeIndex};
use petgraph::visit::{Dfs, Reversed};

pub use confidence::{beta_mean, evidence_match, Confidence};
pub use stats::{median, Baseline};

/// Most services in one topology.
pub const MAX_NODES: usize = 4096;
/// Most signals in one diagnosis.
pub const MAX_SIGNALS: usize = 65_536;
/// Most samples in one history or recent window.
pub const MAX_SAMPLES: usize = 100_000;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RcaError {
    #[error("too many services: {0} (at most {MAX_NODES})")]
    TooManyNodes(usize),
    #[error("too many signals: {0} (at most {MAX_SIGNALS})")]
    TooManySignals(usize),
    #[error("signal {0}: too many samples (at most {MAX_SAMPLES})")]
    TooManySamples(usize),
    #[error("edge {0} → {1}: no such service")]
    BadEdge(usize, usize),
    #[error("signal {0}: no such service {1}")]
    BadSignal(usize, usize),
    #[error("target signal {0}: no such signal")]
    BadTarget(usize),
    #[error("signals' recent windows differ in length ({0} and {1})")]
    Misaligned(usize, usize),
}

/// The services and who calls whom.
#[derive(Debug, Clone)]
pub struct Topology {
    names: Vec<String>,
    graph: DiGraph<(), ()>,
}

impl Topology {
    /// `edges` are `(caller, callee)` indices into `names`.
    ///
    /// # Errors
    /// More than [`MAX_NODES`] names, or an edge naming no service.
    pub fn new(names: Vec<String>, edges: &[(usize, usize)]) -> Result<Self, RcaError> {
        if names.len() > MAX_NODES {
            return Err(RcaError::TooManyNodes(names.len()));
        }
        let mut graph = DiGraph::with_capacity(names.len(), edges.len());
        for _ in &names {
            graph.add_node(());
        }
        for &(a, b) in edges {
            if a >= names.len() || b >= names.len() {
                return Err(RcaError::BadEdge(a, b));
            }
            if a != b {
                graph.update_edge(NodeIndex::new(a), NodeIndex::new(b), ());
            }
        }
        Ok(Topology { names, graph })
    }

    pub fn len(&self) -> usize {
        self.names.len()
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    pub fn name(&self, node: usize) -> &str {
        self.names.get(node).map_or("?", String::as_str)
    }

    pub fn index(&self, name: &str) -> Option<usize> {
        self.names.iter().position(|n| n == name)
    }

    /// Direct callees of `node`, in index order.
    pub fn callees(&self, node: usize) -> Vec<usize> {
        let mut v: Vec<usize> = self
            .graph
            .neighbors(NodeIndex::new(node))
            .map(NodeIndex::index)
            .collect();
        v.sort_unstable();
        v
    }

    /// `out[v]`: `node` reaches `v` by calls (`node` itself included).
    pub fn reaches(&self, node: usize) -> Vec<bool> {
        let mut out = vec![false; self.len()];
        if node >= self.len() {
            return out;
        }
        let mut dfs = Dfs::new(&self.graph, NodeIndex::new(node));
        while let Some(n) = dfs.next(&self.graph) {
            out[n.index()] = true;
        }
        out
    }

    /// `out[v]`: `node` reaches `v` (or, `reverse`, `v` reaches `node`)
    /// through services with `allowed[_]` only (`node` itself always).
    pub fn reach_within(&self, node: usize, allowed: &[bool], reverse: bool) -> Vec<bool> {
        let mut out = vec![false; self.len()];
        if node >= self.len() {
            return out;
        }
        let dir = if reverse {
            petgraph::Direction::Incoming
        } else {
            petgraph::Direction::Outgoing
        };
        let mut stack = vec![node];
        out[node] = true;
        while let Some(v) = stack.pop() {
            for w in self.graph.neighbors_directed(NodeIndex::new(v), dir) {
                let w = w.index();
                if !out[w] && allowed.get(w).copied().unwrap_or(false) {
                    out[w] = true;
                    stack.push(w);
                }
            }
        }
        out
    }

    /// `out[v]`: `v` reaches `node` by calls (`node` itself included).
    pub fn reached_by(&self, node: usize) -> Vec<bool> {
        let mut out = vec![false; self.len()];
        if node >= self.len() {
            return out;
        }
        let rev = Reversed(&self.graph);
        let mut dfs = Dfs::new(rev, NodeIndex::new(node));
        while let Some(n) = dfs.next(rev) {
            out[n.index()] = true;
        }
        out
    }
}

/// Which way a signal goes bad.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Bad when high (latency, error count, queue depth, memory).
    Up,
    /// Bad when low (availability, success rate, free disk).
    Down,
    /// Bad either way (traffic).
    Both,
}

/// One signal of one service.
#[derive(Debug, Clone, Copy)]
pub struct Signal<'a> {
    pub node: usize,
    /// Label shown in explanations (`latency`, `errors`, ...).
    pub name: &'a str,
    pub direction: Direction,
    /// Normal operation (NaN = no data).
    pub history: &'a [f64],
    /// The window judged; index `t` is the same time step in every signal.
    pub recent: &'a [f64],
}

/// The method's parameters. The defaults are fixed a priori (see the crate
/// docs and docs/rca.md), not fitted to any evaluation set.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Params {
    /// A target sample at or above this robust z is a symptom (the classic 3σ).
    pub symptom_z: f64,
    /// Floor of the anomaly threshold (robust z).
    pub anomaly_z: f64,
    /// Consecutive samples a signal must exceed its threshold for.
    pub persistence: usize,
    /// Steps an anomaly may be away from a symptom and still count.
    pub coincidence: usize,
    /// Fewer finite history samples than this: the signal is not judged.
    pub min_history: usize,
    /// Longest ranked list returned.
    pub max_candidates: usize,
    /// With a cause named, the list is filled up to this many services with
    /// [`Diagnosis::suspects`] (the top-3 a person looks at).
    pub min_named: usize,
}

impl Default for Params {
    fn default() -> Self {
        Params {
            symptom_z: 3.0,
            anomaly_z: 5.0,
            persistence: 2,
            coincidence: 1,
            min_history: 8,
            max_candidates: 10,
            min_named: 3,
        }
    }
}

/// Why there is, or is not, a cause.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// At least one candidate; the first is the most likely cause.
    Cause,
    /// The target shows no symptom in the window.
    NoSymptom,
    /// A symptom, but nothing on its dependency closure is anomalous.
    Unexplained,
}

impl Verdict {
    pub fn name(self) -> &'static str {
        match self {
            Verdict::Cause => "cause",
            Verdict::NoSymptom => "no_symptom",
            Verdict::Unexplained => "unexplained",
        }
    }
}

/// One ranked root-cause candidate: a service and its most anomalous signal.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    pub node: usize,
    /// Index into the signals passed to [`diagnose`].
    pub signal: usize,
    /// Largest persistent robust z in the window.
    pub z: f64,
    /// The threshold it had to beat (`max(anomaly_z, own history's largest run)`,
    /// the run of `persistence` samples or, for a sustained anomaly, of its length).
    pub threshold: f64,
    /// First step of its anomaly.
    pub onset: usize,
    /// No anomalous service among what it calls.
    pub root: bool,
    /// Share of anomalous services on a path from the target to it, in [0, 1].
    pub explains: f64,
    /// Its onset is no later than the start of the symptom run it explains
    /// (+ coincidence).
    pub onset_ok: bool,
    /// The target reaches it through services that show the symptom too.
    pub connected: bool,
    /// Something it calls shows the symptom too, below the anomaly threshold:
    /// the origin may lie deeper, unseen.
    pub weak_below: bool,
    /// The share of the target's change at the symptom, in absolute units
    /// (change × traffic), that its own change can account for, in [0, 1];
    /// 1 without traffic figures.
    pub cover: f64,
    /// The ranking score.
    pub score: f64,
    /// Anomalous services that call it (transitively): the victims if it is the cause.
    pub victims: Vec<usize>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Diagnosis {
    pub verdict: Verdict,
    /// Best first; roots before non-roots; at most `max_candidates`.
    pub candidates: Vec<Candidate>,
    /// First symptom step, when there is a symptom.
    pub symptom_onset: Option<usize>,
    /// Signals judged anomalous (anywhere, before the closure and coincidence filters).
    pub anomalous_signals: usize,
    /// Samples of the target at symptom level.
    pub symptom_samples: usize,
    /// When a cause is named but fewer than `min_named` services are:
    /// services on the target's closure that show the symptom too (z at
    /// `symptom_z` or more near its steps) without being anomalous (not
    /// beyond their own threshold), closest to their threshold first. They
    /// are ranked after every candidate and are never a cause on their own
    /// (`root` false, `score` 0); with no cause there are none.
    pub suspects: Vec<Candidate>,
}

impl Diagnosis {
    /// Distinct services in rank order: the candidates, then the suspects.
    pub fn ranked_nodes(&self) -> Vec<usize> {
        let mut out: Vec<usize> = Vec::new();
        for c in self.candidates.iter().chain(&self.suspects) {
            if !out.contains(&c.node) {
                out.push(c.node);
            }
        }
        out
    }

    /// How much the first candidate stands out from the other roots, in [0, 1]:
    /// its share of the roots' total score (1 when it is the only root).
    pub fn top_share(&self) -> f64 {
        let total: f64 = self
            .candidates
            .iter()
            .filter(|c| c.root)
            .map(|c| c.score.max(0.0))
            .sum();
        match self.candidates.first() {
            Some(c) if total > 0.0 => (c.score.max(0.0) / total).clamp(0.0, 1.0),
            _ => 0.0,
        }
    }
}

/// One signal's judgement.
struct Judged {
    z: Vec<f64>,
    /// The baseline's scale (z back to the signal's units).
    scale: f64,
    threshold: f64,
    /// Steps covered by a persistent run above the threshold.
    anomalous: Vec<bool>,
    peak: f64,
    onset: Option<usize>,
    /// The run length the threshold is for (`persistence`, or longer for a
    /// sustained anomaly, see [`sustained`]).
    k: usize,
}

/// `judge` a signal; `past` (the target's history, see [`past_incidents`])
/// marks history steps that were no normal operation: they are left out of
/// the precedent (the largest run), not of the baseline. Histories are
/// aligned at their ends (the last sample of each is the same time step).
fn judge(s: &Signal<'_>, p: &Params, past: Option<&[bool]>) -> Option<Judged> {
    let base = Baseline::of(s.history, p.min_history)?;
    let mut hz: Vec<f64> = s.history.iter().map(|&x| base.z(x, s.direction)).collect();
    if let Some(past) = past {
        // Step j of this history is step j + off of the target's.
        let off = past.len() as isize - hz.len() as isize;
        for (j, z) in hz.iter_mut().enumerate() {
            let t = j as isize + off;
            if t >= 0 && past.get(t as usize).copied().unwrap_or(false) {
                *z = f64::NAN;
            }
        }
    }
    let hist_run = max_run_min(&hz, p.persistence);
    let threshold = if hist_run.is_finite() {
        p.anomaly_z.max(hist_run)
    } else {
        p.anomaly_z
    };
    let z: Vec<f64> = s.recent.iter().map(|&x| base.z(x, s.direction)).collect();
    let (anomalous, peak, onset) = runs_above(&z, threshold, p.persistence);
    let mut j = Judged {
        z,
        scale: base.scale,
        threshold,
        anomalous,
        peak,
        onset,
        k: p.persistence,
    };
    if j.onset.is_none() {
        if let Some((k, thr)) = sustained(&hz, &j.z, p) {
            let (anomalous, peak, onset) = runs_above(&j.z, thr, k);
            if onset.is_some() {
                j = Judged {
                    threshold: thr,
                    anomalous,
                    peak,
                    onset,
                    k,
                    ..j
                };
            }
        }
    }
    Some(j)
}

/// A sustained anomaly is judged against sustained history: for each run
/// length `k` longer than `persistence` (up to the window's length), a run
/// of `k` window samples all beyond `max(anomaly_z, the largest k-sample run
/// of the history)` is unprecedented for its length, even when a shorter,
/// deeper blip in the history sets a higher bar for 2-sample runs. Returns
/// the `k` and threshold where the window exceeds its bar by the largest
/// factor, if any.
fn sustained(hz: &[f64], z: &[f64], p: &Params) -> Option<(usize, f64)> {
    let p0 = p.persistence.max(1);
    // Most signals have no run of p0 + 1 samples above `anomaly_z` at all.
    let mut run = 0;
    let mut longest = 0;
    for &v in z {
        run = if v > p.anomaly_z { run + 1 } else { 0 };
        longest = longest.max(run);
    }
    if longest <= p0 {
        return None;
    }
    let wv = run_minima_by_length(z);
    // The history's, only once the window has a run longer than p0.
    let mut hv: Option<Vec<f64>> = None;
    let mut best: Option<(usize, f64, f64)> = None;
    for (k, &w) in wv.iter().enumerate().skip(p0 + 1) {
        // Run minima only fall as k grows: nothing longer can pass either.
        if w <= p.anomaly_z {
            break;
        }
        let h = hv
            .get_or_insert_with(|| run_minima_by_length(hz))
            .get(k)
            .copied()
            .unwrap_or(f64::NEG_INFINITY);
        let thr = if h.is_finite() {
            p.anomaly_z.max(h)
        } else {
            p.anomaly_z
        };
        let excess = w / thr;
        if w > thr && best.is_none_or(|(_, _, e)| excess > e) {
            best = Some((k, thr, excess));
        }
        // From here on the bar is `anomaly_z` and the window's run minima
        // only fall: no longer run can exceed by more.
        if h <= p.anomaly_z {
            break;
        }
    }
    best.map(|(k, thr, _)| (k, thr))
}

/// `out[k]` (k in 1..=len): the largest minimum over runs of `k`
/// consecutive finite samples (NaN breaks a run), −∞ when there is none;
/// `out[0]` is −∞. Linear time: each sample is the minimum of the longest
/// run around it bounded by smaller samples (a monotonic stack), and a run
/// minimum for length L is one for every shorter length too.
fn run_minima_by_length(xs: &[f64]) -> Vec<f64> {
    let n = xs.len();
    let mut out = vec![f64::NEG_INFINITY; n + 1];
    let mut stack: Vec<usize> = Vec::new();
    let mut start = 0;
    while start < n {
        if !xs[start].is_finite() {
            start += 1;
            continue;
        }
        let end = (start..n).find(|&i| !xs[i].is_finite()).unwrap_or(n);
        let seg = &xs[start..end];
        let m = seg.len();
        // left[i]: first index of the span where seg[i] is the minimum.
        let mut left = vec![0; m];
        stack.clear();
        for i in 0..m {
            while stack.last().is_some_and(|&t| seg[t] >= seg[i]) {
                stack.pop();
            }
            left[i] = stack.last().map_or(0, |&t| t + 1);
            stack.push(i);
        }
        stack.clear();
        for i in (0..m).rev() {
            while stack.last().is_some_and(|&t| seg[t] >= seg[i]) {
                stack.pop();
            }
            let right = stack.last().copied().unwrap_or(m);
            let len = right - left[i];
            out[len] = out[len].max(seg[i]);
            stack.push(i);
        }
        start = end;
    }
    for k in (1..n).rev() {
        out[k] = out[k].max(out[k + 1]);
    }
    out
}

/// The target's past incidents: history steps in a run of at least
/// `persistence` samples at `symptom_z` or more (the symptom, persistent, as
/// an anomaly must be), widened by `coincidence` steps either way. During
/// them the system was not in normal operation, so what its dependencies did
/// then is no precedent: a fault that already happened once in the history
/// would otherwise be "normal" for ever after.
fn past_incidents(target: &Signal<'_>, p: &Params) -> Option<Vec<bool>> {
    let base = Baseline::of(target.history, p.min_history)?;
    let at: Vec<bool> = target
        .history
        .iter()
        .map(|&x| base.z(x, target.direction) >= p.symptom_z)
        .collect();
    let k = p.persistence.max(1);
    let n = at.len();
    let mut out = vec![false; n];
    let mut t = 0;
    while t < n {
        if !at[t] {
            t += 1;
            continue;
        }
        let end = (t..n).take_while(|&u| at[u]).last().unwrap_or(t);
        if end + 1 - t >= k {
            let lo = t.saturating_sub(p.coincidence);
            let hi = (end + p.coincidence).min(n - 1);
            for o in &mut out[lo..=hi] {
                *o = true;
            }
        }
        t = end + 1;
    }
    // Nothing to leave out: no mask at all.
    out.contains(&true).then_some(out)
}

/// The same judgement with the window's own level around the symptom taken
/// out: `z − max(0, level)`, where `level` is the smaller of the medians of
/// `z` before the first symptom step and after the last one (a side with no
/// steps is left out; neither side: no level). A shift that is already there
/// before the symptom and still there after it (drift between the days of the
/// history and the window) is no change at the symptom; a fault that starts
/// with the symptom, or outlasts it, keeps a quiet side.
fn relative_to_window(j: &Judged, symptom: &[bool], lead: usize) -> Judged {
    // Pre-existing: already beyond its threshold at the window's first step.
    let pre =
        j.z.iter()
            .find(|z| z.is_finite())
            .is_some_and(|&z| z > j.threshold);
    let level = if pre {
        window_level(&j.z, symptom, lead).max(0.0)
    } else {
        0.0
    };
    let z: Vec<f64> = j.z.iter().map(|&z| z - level).collect();
    let (anomalous, peak, onset) = runs_above(&z, j.threshold, j.k);
    Judged {
        z,
        scale: j.scale,
        threshold: j.threshold,
        anomalous,
        peak,
        onset,
        k: j.k,
    }
}

/// The smaller of the medians of `z` before the first symptom step and after
/// the last one (a side with no steps is left out; neither side: 0).
fn window_level(z: &[f64], symptom: &[bool], lead: usize) -> f64 {
    // Both sides are needed: already there before, and still there after.
    window_sides(z, symptom, lead).map_or(0.0, |(before, after)| before.min(after))
}

/// The medians of `z` before the symptom (outside the `lead`) and after its
/// last step; `None` when a side is empty.
fn window_sides(z: &[f64], symptom: &[bool], lead: usize) -> Option<(f64, f64)> {
    let first = symptom.iter().position(|&b| b)?;
    let last = symptom.iter().rposition(|&b| b)?;
    let side = |r: std::ops::Range<usize>| median(z.get(r).unwrap_or(&[]));
    let before = side(0..first.saturating_sub(lead));
    let after = side(last + 1..z.len());
    (before.is_finite() && after.is_finite()).then_some((before, after))
}
/// Steps covered by runs of `k` samples all above `threshold`, the largest
/// run minimum, and the first run's start.
fn runs_above(z: &[f64], threshold: f64, k: usize) -> (Vec<bool>, f64, Option<usize>) {
    let k = k.max(1);
    let mut anomalous = vec![false; z.len()];
    let mut peak = f64::NEG_INFINITY;
    let mut onset = None;
    if z.len() >= k {
        for t in 0..=(z.len() - k) {
            let run = &z[t..t + k];
            if run.iter().all(|&v| v > threshold) {
                let m = run.iter().copied().fold(f64::INFINITY, f64::min);
                peak = peak.max(m);
                onset = Some(onset.unwrap_or(t));
                for a in &mut anomalous[t..t + k] {
                    *a = true;
                }
            }
        }
    }
    (anomalous, peak, onset)
}

/// The largest value `m` such that some `k` consecutive samples are all ≥ `m`
/// (NaN breaks a run); −∞ when there is no run of `k` finite samples.
fn max_run_min(z: &[f64], k: usize) -> f64 {
    let k = k.max(1);
    let mut best = f64::NEG_INFINITY;
    if z.len() < k {
        return best;
    }
    for w in z.windows(k) {
        if w.iter().all(|v| v.is_finite()) {
            let m = w.iter().copied().fold(f64::INFINITY, f64::min);
            best = best.max(m);
        }
    }
    best
}

/// The name of a service's traffic signal (requests per step). It is context,
/// not evidence: when the services compared both have one, changes are
/// weighed by their traffic; a traffic change itself names no cause (its
/// effect shows in the latency or errors of the service taking the load).
pub const VOLUME: &str = "requests";

/// Per service: the median of its `VOLUME` signal over the symptom steps
/// (else over the window, else over its history); `None` without one. A
/// service without traffic at the symptom changes nothing in absolute units.
fn volumes(n: usize, signals: &[Signal<'_>], symptom: &[bool]) -> Vec<Option<f64>> {
    let mut out = vec![None; n];
    for s in signals.iter().filter(|s| s.name == VOLUME) {
        let at: Vec<f64> = s
            .recent
            .iter()
            .enumerate()
            .filter(|&(t, _)| symptom.get(t).copied().unwrap_or(false))
            .map(|(_, &x)| x)
            .collect();
        let v = [median(&at), median(s.recent), median(s.history)]
            .into_iter()
            .find(|x| x.is_finite());
        if let (Some(v), Some(slot)) = (v, out.get_mut(s.node)) {
            *slot = Some(v.max(0.0));
        }
    }
    out
}

/// A cross-kind link: an anomaly of kind `cause` on a service leads to
/// `effect` on it and, through calls, on its callers (a filling queue makes
/// the callers wait: `queue_depth` → `latency`). Kinds are signal names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lead<'a> {
    pub cause: &'a str,
    pub effect: &'a str,
}

/// The links the shipped pattern library states
/// (`crates/medic-config/patterns/default.yaml`: a pattern whose first
/// symptom is `cause` on the service itself and that lists `effect` as a
/// later symptom, on itself or its callers). The daemon derives its links
/// from the patterns it has loaded (the operator's too) and passes them to
/// [`diagnose_with_leads`].
pub const DEFAULT_LEADS: &[Lead<'static>] = &[
    // queue_filling
    Lead {
        cause: "queue_depth",
        effect: "latency",
    },
    // connection_pool_exhaustion
    Lead {
        cause: "pool_in_use",
        effect: "latency",
    },
    // memory_leak
    Lead {
        cause: "memory",
        effect: "latency",
    },
    // error_spike_after_change
    Lead {
        cause: "change",
        effect: "errors",
    },
    // hang
    Lead {
        cause: "healthz_timeout",
        effect: "process_alive",
    },
];

/// Most cross-kind links one diagnosis uses (more are ignored).
pub const MAX_LEADS: usize = 256;

/// Ranks root-cause candidates for the symptom on `target` (an index into
/// `signals`), with the cross-kind links of the shipped library
/// ([`DEFAULT_LEADS`]). Without a target there is no symptom and so no cause.
///
/// # Errors
/// Inputs beyond the bounds, a signal naming no service, a bad target, or
/// recent windows of different lengths.
pub fn diagnose(
    topo: &Topology,
    signals: &[Signal<'_>],
    target: Option<usize>,
    p: &Params,
) -> Result<Diagnosis, RcaError> {
    diagnose_with_leads(topo, signals, target, p, DEFAULT_LEADS)
}

/// [`diagnose`] with the given cross-kind links (at most [`MAX_LEADS`] are
/// used; a link whose cause is [`VOLUME`] or equals its effect is ignored).
///
/// **Cross-kind explanation.** A candidate anomalous in kind `e` is no root
/// when a service it calls, through services symptomatic in `e` (at
/// `symptom_z` near the symptom), is anomalous in a kind `c` with a link
/// `c` → `e`, starting no later than the candidate's own anomaly. Units of
/// different kinds do not compare, so there is no size test: the link, the
/// path and the order are the evidence. A candidate of kind `c` counts as
/// its victims, connection and explained share the services reached through
/// services symptomatic in `c` or in any `e` it leads to.
///
/// # Errors
/// As [`diagnose`].
pub fn diagnose_with_leads(
    topo: &Topology,
    signals: &[Signal<'_>],
    target: Option<usize>,
    p: &Params,
    leads: &[Lead<'_>],
) -> Result<Diagnosis, RcaError> {
    diagnose_noticed(topo, signals, target, None, p, leads)
}

/// [`diagnose_with_leads`] told when the violation was noticed: `noticed`
/// is the window step of the report (an SLO alert, a dataset's target
/// timestamp). When no target sample reaches `symptom_z`, the noticed step
/// is the symptom, provided the target moved the bad way there (z > 0):
/// someone saw a violation the target's own noise hides. With a sample at
/// symptom level the symptom is as without it, so a report changes nothing
/// where the data speaks for itself. A one-step symptom halves the evidence
/// as always. An index past the window is ignored.
///
/// # Errors
/// As [`diagnose`].
pub fn diagnose_noticed(
    topo: &Topology,
    signals: &[Signal<'_>],
    target: Option<usize>,
    noticed: Option<usize>,
    p: &Params,
    leads: &[Lead<'_>],
) -> Result<Diagnosis, RcaError> {
    if signals.len() > MAX_SIGNALS {
        return Err(RcaError::TooManySignals(signals.len()));
    }
    let mut len = None;
    for (i, s) in signals.iter().enumerate() {
        if s.node >= topo.len() {
            return Err(RcaError::BadSignal(i, s.node));
        }
        if s.history.len() > MAX_SAMPLES || s.recent.len() > MAX_SAMPLES {
            return Err(RcaError::TooManySamples(i));
        }
        match len {
            None => len = Some(s.recent.len()),
            Some(l) if l != s.recent.len() => return Err(RcaError::Misaligned(l, s.recent.len())),
            Some(_) => {}
        }
    }
    if let Some(t) = target {
        if t >= signals.len() {
            return Err(RcaError::BadTarget(t));
        }
    }
    // The precedent of every other signal leaves out the target's past
    // incidents; the target's own is all of its history (its past symptoms
    // with nothing beneath them are its normal variability).
    let past = target.and_then(|t| past_incidents(&signals[t], p));
    let judged: Vec<Option<Judged>> = signals
        .iter()
        .enumerate()
        .map(|(i, s)| judge(s, p, past.as_deref().filter(|_| Some(i) != target)))
        .collect();
    let anomalous_signals = judged
        .iter()
        .filter(|j| j.as_ref().is_some_and(|j| j.onset.is_some()))
        .count();
    let none = |verdict, symptom_onset| Diagnosis {
        verdict,
        candidates: Vec::new(),
        symptom_onset,
        anomalous_signals,
        symptom_samples: 0,
        suspects: Vec::new(),
    };
    let Some(target) = target else {
        return Ok(none(Verdict::NoSymptom, None));
    };
    // Symptom times of the target.
    let mut symptom: Vec<bool> = match &judged[target] {
        Some(j) => j.z.iter().map(|&z| z >= p.symptom_z).collect(),
        None => Vec::new(),
    };
    // Noticed by someone, though below the symptom level everywhere.
    if let (Some(t), Some(j)) = (noticed, &judged[target]) {
        if !symptom.iter().any(|&b| b) && j.z.get(t).is_some_and(|&z| z > 0.0) {
            symptom[t] = true;
        }
    }
    let Some(symptom_onset) = symptom.iter().position(|&b| b) else {
        return Ok(none(Verdict::NoSymptom, None));
    };
    let near_symptom = |t: usize| {
        let lo = t.saturating_sub(p.coincidence);
        let hi = (t + p.coincidence).min(symptom.len().saturating_sub(1));
        (lo..=hi).any(|u| symptom.get(u).copied().unwrap_or(false))
    };
    let tnode = signals[target].node;
    let closure = topo.reaches(tnode);
    // Judged against the window's own level away from the symptom too.
    // Only while the target is quiet around its symptom steps (below half the
    // symptom level): otherwise the episode fills the window and its sides
    // are no reference.
    // Quiet on *both* sides: a target still raised after its last symptom
    // step (or before it) is inside an episode that started earlier or
    // lasts, and a cause that started before it is no drift.
    let quiet = judged[target].as_ref().is_some_and(|j| {
        window_sides(&j.z, &symptom, p.coincidence)
            .is_none_or(|(before, after)| before.max(after) < p.symptom_z / 2.0)
    });
    let judged: Vec<Option<Judged>> = if quiet {
        judged
            .iter()
            .map(|j| {
                j.as_ref()
                    .map(|j| relative_to_window(j, &symptom, p.coincidence))
            })
            .collect()
    } else {
        judged
    };
    // Each service's traffic at the symptom (its `VOLUME` signal): changes
    // are compared in absolute units, change × traffic (extra seconds
    // spent, requests lost), which add up along calls.
    let volume = volumes(topo.len(), signals, &symptom);
    // Kinds of signal (by name): a fault propagates in kind (a slow callee
    // makes its callers slow, failing calls make them fail).
    let mut kinds: Vec<&str> = Vec::new();
    for s in signals {
        if !kinds.contains(&s.name) {
            kinds.push(s.name);
        }
    }
    let kind_of = |i: usize| {
        kinds
            .iter()
            .position(|k| *k == signals[i].name)
            .unwrap_or(0)
    };
    let n = topo.len();
    // strong[k][v]: v has a kind-k signal anomalous (persistent, unprecedented)
    // near the symptom; weak[k][v]: some kind-k sample at symptom level near it.
    let mut strong = vec![vec![false; n]; kinds.len()];
    let mut weak = vec![vec![false; n]; kinds.len()];
    // moved[k][v]: some kind-k sample at least 1 robust σ the bad way near it.
    let mut moved = vec![vec![false; n]; kinds.len()];
    // first[k][v]: the earliest start of v's anomalous kind-k signals, each
    // from where its anomalous run's excursion began: the steps at
    // `symptom_z` or more right before its onset count (a filling queue
    // leaves its normal range before it becomes unprecedented).
    let mut first: Vec<Vec<Option<usize>>> = vec![vec![None; n]; kinds.len()];
    let mut best: Vec<Option<(usize, f64)>> = vec![None; n];
    // best_of[k][v]: v's most anomalous kind-k signal.
    let mut best_of: Vec<Vec<Option<(usize, f64)>>> = vec![vec![None; n]; kinds.len()];
    for (i, (s, j)) in signals.iter().zip(&judged).enumerate() {
        let Some(j) = j else { continue };
        if !closure[s.node] || s.name == VOLUME {
            continue;
        }
        let k = kind_of(i);
        if j.z
            .iter()
            .enumerate()
            .any(|(t, &z)| z >= p.symptom_z && near_symptom(t))
        {
            weak[k][s.node] = true;
        }
        if j.z
            .iter()
            .enumerate()
            .any(|(t, &z)| z >= 1.0 && near_symptom(t))
        {
            moved[k][s.node] = true;
        }
        if j.onset.is_none() {
            continue;
        }
        let coincides = j
            .anomalous
            .iter()
            .enumerate()
            .any(|(t, &a)| a && near_symptom(t));
        if !coincides {
            continue;
        }
        strong[k][s.node] = true;
        weak[k][s.node] = true;
        if let Some(o) = j.onset {
            let rise = (0..o)
                .rev()
                .take_while(|&t| j.z[t] >= p.symptom_z)
                .last()
                .unwrap_or(o);
            let f = &mut first[k][s.node];
            *f = Some(f.map_or(rise, |f| f.min(rise)));
        }
        let excess = j.peak / j.threshold.max(f64::MIN_POSITIVE);
        match best[s.node] {
            Some((_, e)) if e >= excess => {}
            _ => best[s.node] = Some((i, excess)),
        }
        match best_of[k][s.node] {
            Some((_, e)) if e >= excess => {}
            _ => best_of[k][s.node] = Some((i, excess)),
        }
    }
    let n_anomalous = best.iter().filter(|b| b.is_some()).count();
    if n_anomalous == 0 {
        return Ok(none(Verdict::Unexplained, Some(symptom_onset)));
    }
    // The symptom is scant evidence of its own cause. When nothing but the
    // target's own signal is anomalous (no other service, no other signal of
    // the target, not its traffic), "the target is its own cause" rests on
    // the symptom alone, and a blip of noise shows as much as a fault does
    // for the shortest run an anomaly may have (`persistence` samples). So
    // the symptom alone names its service only when its anomaly lasts longer
    // than that; else it is unexplained, not a cause.
    let longest_run = |a: &[bool]| a.split(|&x| !x).map(<[bool]>::len).max().unwrap_or(0);
    let corroborated = n_anomalous > 1
        || judged[target]
            .as_ref()
            .is_some_and(|j| longest_run(&j.anomalous) > p.persistence.max(1))
        || signals.iter().zip(&judged).enumerate().any(|(i, (s, j))| {
            i != target
                && s.node == tnode
                && j.as_ref().is_some_and(|j| {
                    j.anomalous
                        .iter()
                        .enumerate()
                        .any(|(t, &a)| a && near_symptom(t))
                })
        });
    if best[tnode].is_some() && !corroborated {
        return Ok(none(Verdict::Unexplained, Some(symptom_onset)));
    }
    // Per kind: the services the target reaches through symptomatic services only.
    let allowed: Vec<Vec<bool>> = weak
        .iter()
        .map(|w| {
            let mut a = w.clone();
            a[tnode] = true;
            a
        })
        .collect();
    let from_target: Vec<Vec<bool>> = allowed
        .iter()
        .map(|a| topo.reach_within(tnode, a, false))
        .collect();
    // leads_to[c][e]: the links between the kinds present (bounded).
    let kind_index = |name: &str| kinds.iter().position(|k| *k == name);
    let mut leads_to = vec![vec![false; kinds.len()]; kinds.len()];
    for l in leads.iter().take(MAX_LEADS) {
        if l.cause == VOLUME || l.cause == l.effect {
            continue;
        }
        if let (Some(c), Some(e)) = (kind_index(l.cause), kind_index(l.effect)) {
            leads_to[c][e] = true;
        }
    }
    // Within a service: when its most anomalous kind `e` has a kind `c`
    // leading to it (`c` → `e`) anomalous on the same service from no later
    // (+ `coincidence`), `c` is the service's signal: a filling queue
    // explains its own service's latency as it does its callers'.
    for v in 0..n {
        let Some((i, _)) = best[v] else { continue };
        let e = kind_of(i);
        let Some(fe) = first[e][v] else { continue };
        let cause = (0..kinds.len())
            .filter(|&c| c != e && leads_to[c][e] && strong[c][v])
            .filter(|&c| first[c][v].is_some_and(|fc| fc <= fe + p.coincidence))
            .filter_map(|c| best_of[c][v])
            .max_by(|a, b| a.1.total_cmp(&b.1));
        if cause.is_some() {
            best[v] = cause;
        }
    }
    let kind_of_best = |v: usize| best[v].map(|(i, _)| kind_of(i));
    // Fewest call hops from the target to each service (breadth first).
    let mut hops: Vec<Option<usize>> = vec![None; n];
    hops[tnode] = Some(0);
    let mut queue = std::collections::VecDeque::from([tnode]);
    while let Some(u) = queue.pop_front() {
        let d = hops[u].unwrap_or(0);
        for c in topo.callees(u) {
            if hops[c].is_none() {
                hops[c] = Some(d + 1);
                queue.push_back(c);
            }
        }
    }
    let target_kind = kind_of(target);
    let mut candidates = Vec::new();
    for (node, b) in best.iter().enumerate() {
        let Some((sig, excess)) = *b else { continue };
        let Some(j) = &judged[sig] else { continue };
        let k = kind_of(sig);
        let mut a = allowed[k].clone();
        a[node] = true;
        // What it calls through symptomatic services, and who calls it so.
        let below = topo.reach_within(node, &a, false);
        // The kinds its anomaly propagates in: its own and those it leads to.
        let spread: Vec<usize> = (0..kinds.len())
            .filter(|&e| e == k || leads_to[k][e])
            .collect();
        // Symptomatic in any of them (only computed when it leads somewhere).
        let (a_spread, from_target_spread) = if spread.len() > 1 {
            let mut u = allowed[k].clone();
            for &e in &spread {
                for (x, &w) in u.iter_mut().zip(&allowed[e]) {
                    *x |= w;
                }
            }
            let from = topo.reach_within(tnode, &u, false);
            u[node] = true;
            (u, Some(from))
        } else {
            (a.clone(), None)
        };
        let above = topo.reach_within(node, &a_spread, true);
        let in_spread = |v: usize| spread.iter().any(|&e| strong[e][v]);
        let reached = |v: usize| match &from_target_spread {
            Some(f) => f[v],
            None => from_target[k][v],
        };
        // A symptomatic dependency explains this service's anomaly when its own
        // change, in the signal's units, is at least half of this one's (calls
        // add latency and lost requests; up to 2× amplification by retries
        // and queueing is allowed).
        let delta = |v: usize| {
            best[v]
                .and_then(|(i, _)| judged[i].as_ref())
                .map_or(0.0, |j| j.peak * j.scale)
        };
        let weighted = kinds[k] != VOLUME;
        // Change × traffic of `v` and `w`, when both have a traffic figure;
        // else the changes alone.
        let impacts = |v: usize, w: usize| match (volume[v], volume[w]) {
            (Some(a), Some(b)) if weighted => (delta(v) * a, delta(w) * b),
            _ => (delta(v), delta(w)),
        };
        let root = (0..n).all(|v| {
            v == node || !(below[v] && strong[k][v] && kind_of_best(v) == Some(k)) || {
                let (mine, theirs) = impacts(node, v);
                theirs < mine / 2.0
            }
        });
        // Cross-kind: something it calls through services symptomatic in
        // its kind is anomalous in a kind that leads to it, from no later
        // than its own onset (+ `coincidence`, the same tolerance as
        // `onset_ok`).
        // The earliest start of such an anomaly beneath it, if any.
        let own_onset = j.onset.unwrap_or(0);
        let across = if leads_to.iter().any(|l| l[k]) {
            let mut callee = vec![false; n];
            for u in (0..n).filter(|&u| below[u]) {
                for c in topo.callees(u) {
                    callee[c] = true;
                }
            }
            (0..n)
                .filter(|&v| v != node && callee[v])
                .flat_map(|v| {
                    let (leads_to, strong, first) = (&leads_to, &strong, &first);
                    (0..kinds.len())
                        .filter(move |&c| c != k && leads_to[c][k] && strong[c][v])
                        .filter_map(move |c| first[c][v])
                })
                .min()
        } else {
            None
        };
        let root = root && across.is_none_or(|o| o > own_onset + p.coincidence);
        // The share of the target's change (in absolute units) this
        // candidate's own change can account for.
        // The share of the target's change at the symptom (in absolute
        // units, change × traffic) its own change there can account for.
        let at_symptom = |j: &Judged| {
            j.z.iter()
                .enumerate()
                .filter(|&(t, z)| near_symptom(t) && z.is_finite())
                .map(|(_, &z)| z)
                .fold(0.0, f64::max)
                * j.scale
        };
        // (Only within the target's kind: other kinds' units do not compare.)
        let cover = match (&judged[target], volume[node], volume[tnode]) {
            (Some(tj), Some(a), Some(b)) if node != tnode && weighted && k == target_kind => {
                let want = at_symptom(tj) * b;
                if want > 0.0 {
                    (at_symptom(j) * a / want).min(1.0)
                } else {
                    1.0
                }
            }
            _ => 1.0,
        };
        let (soft, soft_above) = {
            let mut m = moved[k].clone();
            m[tnode] = true;
            m[node] = true;
            let mut up = a_spread.clone();
            for (x, &w) in up.iter_mut().zip(&m) {
                *x |= w;
            }
            (
                topo.reach_within(tnode, &m, false),
                topo.reach_within(node, &up, true),
            )
        };
        let connected = reached(node) || soft[node];
        let n_kind = (0..n).filter(|&v| in_spread(v)).count().max(1);
        let on_path = (0..n)
            .filter(|&v| in_spread(v) && (reached(v) || soft[v]) && (above[v] || soft_above[v]))
            .count();
        let explains = (on_path as f64 / n_kind as f64).min(1.0);
        let onset = j.onset.unwrap_or(0);
        // The symptom run it explains: the one under its onset, else the
        // next one; a cause starts no later than that run (+ coincidence).
        let run_start = (0..symptom.len())
            .filter(|&t| symptom[t] && (t == 0 || !symptom[t - 1]))
            .filter(|&s| {
                let end = (s..symptom.len())
                    .take_while(|&t| symptom[t])
                    .last()
                    .unwrap_or(s);
                end >= onset
            })
            .min();
        let onset_ok = run_start.is_none_or(|s| onset <= s + p.coincidence);
        // Unfelt: in the target's own kind, anomalous more than
        // `coincidence` steps per call hop (from the target, fewest hops)
        // before the symptom run it would explain while
        // the target stayed quiet (below half the symptom level) all that
        // time. A slow or failing callee is felt by its callers within a
        // step per hop; what the target did not feel then is a weaker cause
        // of what it feels now. (A kind leading to the target's, a filling
        // queue, is felt only later: exempt.)
        let lag = p.coincidence * hops[node].unwrap_or(1).max(1);
        let unfelt = node != tnode
            && k == target_kind
            && run_start.is_some_and(|s| {
                onset + lag < s
                    && judged[target].as_ref().is_some_and(|tj| {
                        (onset..s - lag).all(|t| {
                            tj.z.get(t)
                                .is_none_or(|&z| !z.is_finite() || z < p.symptom_z / 2.0)
                        })
                    })
            });
        let mut score = (1.0 + explains) * (1.0 + excess).ln();
        if !onset_ok || unfelt {
            score *= 0.5;
        }
        if !connected {
            score *= 0.5;
        }
        let victims = (0..n)
            .filter(|&v| v != node && above[v] && best[v].is_some())
            .collect();
        // (A linked anomaly beneath it that starts later is no explanation,
        // but the origin may still be deeper: its detection may lag.)
        // A callee at symptom level (not anomalous) in its kind, or in a
        // kind that leads to it (a queue that is filling within its noise),
        // is such a hint too.
        let weak_below = across.is_some()
            || topo.callees(node).into_iter().any(|c| {
                (0..kinds.len())
                    .filter(|&e| e == k || leads_to[e][k])
                    .any(|e| weak[e][c] && !strong[e][c])
            });
        candidates.push(Candidate {
            node,
            signal: sig,
            z: j.peak,
            threshold: j.threshold,
            onset,
            root,
            explains,
            onset_ok,
            connected,
            weak_below,
            cover,
            score,
            victims,
        });
    }
    // The target shows the symptom by definition. When its own signal stays
    // within its precedent (so it is no candidate of its own) while
    // something else is anomalous, it is still the explanation of last
    // resort: its own cause when nothing anomalous beneath it can account
    // for half of its change. It is ranked after every root that can (score
    // 0 and a cover of exactly the half asked) and before every one that
    // cannot; with score 0 its evidence, so its confidence, is 0.
    if !candidates.is_empty() && !candidates.iter().any(|c| c.node == tnode) {
        if let Some(tj) = &judged[target] {
            let z =
                tj.z.iter()
                    .enumerate()
                    .filter(|&(t, z)| symptom.get(t).copied().unwrap_or(false) && z.is_finite())
                    .map(|(_, &z)| z)
                    .fold(0.0, f64::max);
            candidates.push(Candidate {
                node: tnode,
                signal: target,
                z,
                threshold: tj.threshold,
                onset: symptom_onset,
                root: true,
                explains: 0.0,
                onset_ok: true,
                connected: true,
                weak_below: true,
                cover: 0.5,
                score: 0.0,
                victims: Vec::new(),
            });
        }
    }
    // Roots first; among them, those that can account for at least half of
    // the target's change (the same factor 2 as the root test); then score.
    let covers = |c: &Candidate| c.cover >= 0.5;
    candidates.sort_by(|a, b| {
        b.root
            .cmp(&a.root)
            .then(covers(b).cmp(&covers(a)))
            .then(b.score.total_cmp(&a.score))
            .then(a.onset.cmp(&b.onset))
            .then(a.node.cmp(&b.node))
    });
    candidates.truncate(p.max_candidates.max(1));
    // Fill the list up to `min_named` services with the closest misses: on
    // the closure, at symptom level near the symptom, below their threshold.
    let mut named: Vec<usize> = Vec::new();
    for c in &candidates {
        if !named.contains(&c.node) {
            named.push(c.node);
        }
    }
    let mut suspects: Vec<Candidate> = Vec::new();
    if named.len() < p.min_named {
        for (i, (s, j)) in signals.iter().zip(&judged).enumerate() {
            let Some(j) = j else { continue };
            if !closure[s.node] || s.name == VOLUME || named.contains(&s.node) {
                continue;
            }
            let near: Vec<(usize, f64)> =
                j.z.iter()
                    .copied()
                    .enumerate()
                    .filter(|&(t, z)| z >= p.symptom_z && near_symptom(t))
                    .collect();
            let Some(&(onset, _)) = near.first() else {
                continue;
            };
            let z = near
                .iter()
                .map(|&(_, z)| z)
                .fold(f64::NEG_INFINITY, f64::max);
            let closeness = z / j.threshold.max(f64::MIN_POSITIVE);
            let k = kind_of(i);
            let cand = Candidate {
                node: s.node,
                signal: i,
                z,
                threshold: j.threshold,
                onset,
                root: false,
                explains: 0.0,
                onset_ok: true,
                connected: from_target[k][s.node],
                weak_below: false,
                cover: 0.0,
                score: closeness,
                victims: Vec::new(),
            };
            match suspects.iter().position(|c| c.node == s.node) {
                Some(at) if suspects[at].score >= closeness => {}
                Some(at) => suspects[at] = cand,
                None => suspects.push(cand),
            }
        }
        suspects.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.node.cmp(&b.node)));
        suspects.truncate(p.min_named - named.len());
        for c in &mut suspects {
            c.score = 0.0;
        }
    }
    Ok(Diagnosis {
        verdict: Verdict::Cause,
        candidates,
        symptom_onset: Some(symptom_onset),
        anomalous_signals,
        symptom_samples: symptom.iter().filter(|&&b| b).count(),
        suspects,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_minima_by_length_agree_with_the_direct_scan() {
        // Deterministic values with ties and NaN gaps.
        let mut x: u64 = 7;
        let mut next = || {
            x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            (x >> 33) % 9
        };
        for n in [0, 1, 2, 5, 17, 60] {
            for _ in 0..20 {
                let xs: Vec<f64> = (0..n)
                    .map(|_| match next() {
                        0 => f64::NAN,
                        v => v as f64,
                    })
                    .collect();
                let by_len = run_minima_by_length(&xs);
                assert_eq!(by_len.len(), n + 1);
                for (k, &got) in by_len.iter().enumerate().skip(1) {
                    assert_eq!(got, max_run_min(&xs, k), "{xs:?} k {k}");
                }
            }
        }
    }
}
