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
use medic_rca::{beta_mean, diagnose_noticed, evidence_match, Confidence, Direction, Params};
use medic_rca::{Diagnosis, Topology};
use medic_rca::{Lead, Signal};

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
/// Most recorded changes kept per service (the newest).
pub const MAX_CHANGES_PER_SERVICE: usize = 8;

/// A change of a service: recorded through `POST /api/v1/changes` (a deploy
/// or a config change) or made by medic (a canary stage), at the daemon's
/// monotonic time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedChange {
    /// When it was recorded (ms on the daemon's monotonic clock; negative:
    /// before this daemon started, restored from the audit).
    pub at_ms: i64,
    /// `deploy`, `config` or `canary`.
    pub kind: String,
    pub version: Option<String>,
    pub note: Option<String>,
    pub by: String,
}

/// A change medic itself made to a service, from its notice: a staged
/// canary's stage (issue 10) changes `instances` of the service (kind
/// `canary`, by `medic`). Other actions are remediations of an incident
/// already under way and are not counted as changes.
pub fn change_of_notice(n: &medic_core::Notice) -> Option<(String, RecordedChange)> {
    match n {
        medic_core::Notice::CanaryStage {
            service,
            action,
            stage,
            percent,
            incident,
            ..
        } => Some((
            service.clone(),
            RecordedChange {
                at_ms: 0,
                kind: "canary".into(),
                version: None,
                note: Some(format!(
                    "stage {stage} of {action} on {percent} % of the instances, incident {incident}"
                )),
                by: "medic".into(),
            },
        )),
        _ => None,
    }
}

/// Most audit records read back (at start, at an HA takeover) for the
/// changes recorded before.
pub const RESTORE_AUDIT_SCAN: u64 = medic_api::changes::AUDIT_SCAN;
/// A change this daemon holds (dated by its monotonic clock when it was
/// recorded here) and its `change.recorded` audit record (dated by wall
/// time) are the same change when kind, version, note and author agree and
/// their times differ by at most this (ms).
pub const SAME_CHANGE_MS: u64 = 60_000;

/// A `change.recorded` audit record as a change, dated relative to
/// `started` (the wall time of the daemon's monotonic zero): a change
/// recorded before this start has a negative time. `None` for another kind
/// or a record that does not parse.
pub fn change_of_audit(
    rec: &medic_store::AuditRecord,
    started: time::OffsetDateTime,
) -> Option<(String, RecordedChange)> {
    let c = medic_api::changes::change_of_record(rec)?;
    let ts =
        time::OffsetDateTime::parse(&c.at, &time::format_description::well_known::Rfc3339).ok()?;
    let at_ms = i64::try_from((ts - started).whole_milliseconds()).ok()?;
    Some((
        c.service,
        RecordedChange {
            at_ms,
            kind: c.kind,
            version: c.version,
            note: c.note,
            by: c.by,
        },
    ))
}

/// The recorded changes, in the time frame of one diagnosis.
#[derive(Debug, Clone, Copy)]
pub struct Changes<'a> {
    /// Per service (topology index), its changes, oldest first.
    pub per_node: &'a [VecDeque<RecordedChange>],
    /// Time (ms, the changes' clock) of the window's first step.
    pub window_start_ms: u64,
    /// Length of one step (ms).
    pub step_ms: u64,
    /// When the episode began before this window: the onset (ms) of its
    /// first diagnosis. An anomaly that fills the window began no later.
    pub episode_onset_ms: Option<u64>,
}

impl Changes<'_> {
    /// No change recorded anywhere.
    #[cfg(test)]
    pub const NONE: Changes<'static> = Changes {
        per_node: &[],
        window_start_ms: 0,
        step_ms: STEP_MS,
        episode_onset_ms: None,
    };

    /// When the candidate's anomaly began (ms).
    fn onset_ms(&self, onset_step: usize) -> u64 {
        let t = self
            .window_start_ms
            .saturating_add((onset_step as u64).saturating_mul(self.step_ms));
        match self.episode_onset_ms {
            Some(e) if onset_step == 0 && e < t => e,
            _ => t,
        }
    }

    /// The newest change on `node` that fits a pattern's change symptom
    /// `change` and the candidate's symptom `other` (which began at
    /// `onset_ms`): in their `order` (a change with the smaller order comes
    /// first; the same step counts as before) and within `within` of each
    /// other (the later symptom's `within`, else the change's; neither: any
    /// kept change). Returns it and how long before the onset it was (ms;
    /// negative: after).
    fn fitting(
        &self,
        node: usize,
        change: &medic_config::Symptom,
        other: &medic_config::Symptom,
        onset_ms: u64,
    ) -> Option<(&RecordedChange, i64)> {
        let list = self.per_node.get(node)?;
        let within = other
            .within
            .or(change.within)
            .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        let step = i64::try_from(self.step_ms).unwrap_or(i64::MAX);
        let before = match (change.order, other.order) {
            (Some(c), Some(o)) if c < o => Some(true),
            (Some(c), Some(o)) if c > o => Some(false),
            _ => None,
        };
        let onset = i64::try_from(onset_ms).ok()?;
        list.iter().rev().find_map(|c| {
            let gap = onset.saturating_sub(c.at_ms);
            let ordered = match before {
                // The change's step is no later than the onset's.
                Some(true) => gap > -step,
                Some(false) => gap <= 0,
                None => true,
            };
            let close = within.is_none_or(|w| gap.abs() <= w);
            (ordered && close).then_some((c, gap))
        })
    }
}

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
    /// The onset (ms) of the episode's first diagnosis.
    episode_onset_ms: Option<u64>,
    /// Per service, its recorded changes (at most
    /// [`MAX_CHANGES_PER_SERVICE`], oldest first).
    changes: Vec<VecDeque<RecordedChange>>,
    /// Per service, the last bucket in which a violation was reported on it
    /// by something other than its own probes (an Alertmanager alert, a
    /// signal rule): someone noticed it (`medic_rca::diagnose_noticed`).
    noticed: Vec<Option<u64>>,
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
        let changes = names.iter().map(|_| VecDeque::new()).collect();
        let noticed = vec![None; names.len()];
        Some(RcaState {
            noticed,
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
            episode_onset_ms: None,
            changes,
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

    /// A change (deploy, config) was recorded on `service` at `now`; false
    /// for a service the ranking does not know. The next diagnosis sees it.
    pub fn note_change(&mut self, now: MonoTime, service: &str, change: RecordedChange) -> bool {
        let at_ms = i64::try_from(now.as_millis()).unwrap_or(i64::MAX);
        self.restore_change(service, RecordedChange { at_ms, ..change })
    }

    /// A change at its own time (`at_ms`), the newest so far (those read
    /// back from the audit go through [`RcaState::merge_changes`]); false
    /// for an unknown service.
    pub fn restore_change(&mut self, service: &str, change: RecordedChange) -> bool {
        let Some(i) = self.names.iter().position(|n| n == service) else {
            return false;
        };
        let list = &mut self.changes[i];
        list.push_back(change);
        while list.len() > MAX_CHANGES_PER_SERVICE {
            list.pop_front();
        }
        true
    }

    /// Changes read back from the audit (at start, or at an HA takeover),
    /// each at its own time: kept in time order, the newest
    /// [`MAX_CHANGES_PER_SERVICE`] per service. One matching a change held
    /// before this call (see [`SAME_CHANGE_MS`]; each held one matches at
    /// most one) is already here and is skipped, as is one for an unknown
    /// service. Returns how many were added and kept.
    pub fn merge_changes(&mut self, read: Vec<(String, RecordedChange)>) -> usize {
        // Per service, which of the changes held before may still match.
        let mut held: Vec<Vec<(RecordedChange, bool)>> = self
            .changes
            .iter()
            .map(|l| l.iter().map(|c| (c.clone(), false)).collect())
            .collect();
        let mut added = 0usize;
        for (service, change) in read {
            let Some(i) = self.names.iter().position(|n| n == &service) else {
                continue;
            };
            let same = held[i].iter_mut().find(|(c, used)| {
                !*used
                    && c.kind == change.kind
                    && c.version == change.version
                    && c.note == change.note
                    && c.by == change.by
                    && c.at_ms.abs_diff(change.at_ms) <= SAME_CHANGE_MS
            });
            if let Some((_, used)) = same {
                *used = true;
                continue;
            }
            let list = &mut self.changes[i];
            let pos = list
                .iter()
                .position(|c| c.at_ms > change.at_ms)
                .unwrap_or(list.len());
            list.insert(pos, change);
            if list.len() > MAX_CHANGES_PER_SERVICE {
                list.pop_front();
                // The one read back was older than all those kept.
                if pos == 0 {
                    continue;
                }
            }
            added += 1;
        }
        added
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
        } else if !r.ok {
            // Not evidence of its own, but a violation someone noticed.
            self.noticed[svc] = Some(bucket);
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

    /// The diagnosis of the buckets before `now`'s, as the next tick would
    /// make it (the same [`Self::diagnose`]), whether or not its top
    /// hypothesis changed, and the ranking's verdict for `target` (service,
    /// signal) on the same input: what a scenario file (`rca_scenario`)
    /// checks. `None` for the verdict when the target is unknown or not laid
    /// out yet.
    pub fn diagnosis_now(
        &mut self,
        now: MonoTime,
        target: (&str, &str),
    ) -> (Option<medic_rca::Verdict>, DiagnosisReport) {
        let bucket = now.as_millis() / STEP_MS;
        let verdict =
            Self::layout(&self.series, self.episode, bucket).and_then(|(split, dense)| {
                let signals = as_signals(&dense);
                let node = *self.index.get(target.0)?;
                let t = signals
                    .iter()
                    .position(|s| s.node == node && s.name == target.1)?;
                let links = leads(&self.patterns);
                let links = as_leads(&links);
                let noticed = self.noticed_step(node, split, bucket);
                diagnose_noticed(
                    &self.topo,
                    &signals,
                    Some(t),
                    noticed,
                    &Params::default(),
                    &links,
                )
                .ok()
                .map(|d| d.verdict)
            });
        self.last_bucket = Some(bucket);
        (verdict, self.diagnose(bucket))
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
                "{} {} {} {} {:?}",
                h.service,
                h.signal,
                h.pattern,
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

    /// Every signal of every service laid out for a diagnosis of the buckets
    /// before `bucket`: the window's first bucket and, per signal, its
    /// history (ending where the current episode began) and window. `None`
    /// before there is a window and a history.
    fn layout(
        series: &[Vec<Series>],
        episode: Option<u64>,
        bucket: u64,
    ) -> Option<(u64, Vec<Dense<'_>>)> {
        let end = bucket; // exclusive
        let split = end.checked_sub(WINDOW as u64)?;
        // History ends where the current episode began (or at the window).
        let hist_end = episode.map_or(split, |e| e.min(split));
        let start = hist_end.saturating_sub(HISTORY as u64);
        if hist_end <= start {
            return None;
        }
        let hlen = (hist_end - start) as usize;
        // Every signal of every service, in service order.
        let mut dense: Vec<Dense<'_>> = Vec::new();
        for (node, list) in series.iter().enumerate() {
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
        Some((split, dense))
    }

    /// The window step (window from bucket `split`, up to `bucket`,
    /// exclusive) of the last violation noticed on `node`, if within it.
    fn noticed_step(&self, node: usize, split: u64, bucket: u64) -> Option<usize> {
        self.noticed
            .get(node)
            .copied()
            .flatten()
            .filter(|&b| b >= split && b < bucket)
            .map(|b| (b - split) as usize)
    }

    /// Diagnoses the buckets before `bucket` (the current one is incomplete).
    fn diagnose(&mut self, bucket: u64) -> DiagnosisReport {
        let Some((split, dense)) = Self::layout(&self.series, self.episode, bucket) else {
            return DiagnosisReport::default();
        };
        let signals = as_signals(&dense);
        let p = Params::default();
        // Which kinds lead to which symptoms: the loaded patterns' word.
        let links = leads(&self.patterns);
        let links = as_leads(&links);
        // The entry's signal with a symptom whose diagnosis is most certain.
        let mut best: Option<(Diagnosis, usize, f64)> = None;
        for &e in &self.entries {
            let noticed = self.noticed_step(e, split, bucket);
            for (t, s) in signals.iter().enumerate() {
                if s.node != e {
                    continue;
                }
                let Ok(d) = diagnose_noticed(&self.topo, &signals, Some(t), noticed, &p, &links)
                else {
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
            self.episode_onset_ms = None;
            return DiagnosisReport::default();
        };
        let window_start_ms = split.saturating_mul(STEP_MS);
        if self.episode.is_none() {
            self.episode = Some(split);
            let onset = d.candidates.first().map_or(0, |c| c.onset) as u64;
            self.episode_onset_ms = Some(window_start_ms.saturating_add(onset * STEP_MS));
        }
        let changes = Changes {
            per_node: &self.changes,
            window_start_ms,
            step_ms: STEP_MS,
            episode_onset_ms: self.episode_onset_ms,
        };
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
        let report = hypotheses(
            &self.topo,
            &d,
            entry,
            &names,
            &self.patterns,
            &learned,
            &changes,
        );
        // Keep the cause's pattern while the episode lasts (outcomes arrive
        // after the diagnosis may have cleared).
        if let Some(h) = report.hypotheses.first() {
            self.top = Some((h.service.clone(), h.pattern.clone()));
        }
        report
    }
}

/// The cross-kind links the pattern library states (`medic_rca::Lead`): for
/// each general pattern whose first symptom is a signal on the service
/// itself, every later symptom of another signal, on the service itself or
/// its callers (`queue_filling`: `queue_depth` → `latency`). Traffic
/// (`medic_rca::VOLUME`) leads nowhere: it is context, never evidence.
/// Sorted, without duplicates.
pub fn leads(patterns: &[medic_config::Pattern]) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for p in patterns.iter().filter(|p| p.service.is_none()) {
        let Some(first) = p.symptoms.first() else {
            continue;
        };
        if first.on != medic_config::On::SelfNode || first.signal == medic_rca::VOLUME {
            continue;
        }
        for s in &p.symptoms[1..] {
            let on = matches!(s.on, medic_config::On::SelfNode | medic_config::On::Callers);
            let link = (first.signal.clone(), s.signal.clone());
            if on && s.signal != first.signal && !out.contains(&link) {
                out.push(link);
            }
        }
    }
    out.sort();
    out
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

/// The laid-out signals as the ranking's input.
fn as_signals<'a>(dense: &'a [Dense<'a>]) -> Vec<Signal<'a>> {
    dense
        .iter()
        .map(|(node, name, direction, h, w)| Signal {
            node: *node,
            name,
            direction: *direction,
            history: h,
            recent: w,
        })
        .collect()
}

/// The library's cross-kind links ([`leads`]) as the ranking's input.
fn as_leads(links: &[(String, String)]) -> Vec<Lead<'_>> {
    links
        .iter()
        .map(|(cause, effect)| Lead { cause, effect })
        .collect()
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
/// `signal_names[i]` is the name of the signal `i` of the diagnosis (a
/// candidate's `signal`).
///
/// The pattern: with a recorded change on the candidate that fits a
/// pattern with a `change` symptom on `self` (its other symptom on `self` is
/// the candidate's signal, `errors` also meaning `availability`; the change
/// in the pattern's `order` and `within` of the onset, see
/// [`Changes::fitting`]), that pattern (`error_spike_after_change`), the
/// service's own accepted candidates first. Otherwise, as without changes:
/// the first whose first symptom is the candidate's signal (`latency`,
/// `availability`, a rule's name) on the candidate itself and that expects
/// symptoms on its callers when the candidate is not the entry
/// (`dependency_slow`, `dependency_down`), or none when it is; a pattern with
/// a change symptom never matches without a change.
///
/// A change also moves its service up: when the top candidate is a root and
/// a caller of another root whose pattern matched a change, that one is
/// ranked first (see docs/rca.md, "Changes").
pub fn hypotheses(
    topo: &Topology,
    d: &Diagnosis,
    entry: usize,
    signal_names: &[&str],
    patterns: &[medic_config::Pattern],
    learned_for: &dyn Fn(&str, usize, &str) -> f64,
    changes: &Changes<'_>,
) -> DiagnosisReport {
    use medic_config::{On, Pattern};
    // A pattern with a change symptom, for a change that fits.
    let after_change = |c: &medic_rca::Candidate, own: bool, signal: &str| {
        let onset = changes.onset_ms(c.onset);
        let service = topo.name(c.node);
        let mut own_first = patterns
            .iter()
            .filter(|p| p.service.as_deref() == Some(service))
            .chain(patterns.iter().filter(|p| p.service.is_none()));
        own_first.find_map(|p: &Pattern| {
            let ch = p.change_symptom()?;
            let other = p.symptom_after_change(signal)?;
            if own && p.symptoms.iter().any(|s| s.on == On::Callers) {
                return None;
            }
            let (change, gap) = changes.fitting(c.node, ch, other, onset)?;
            Some((p, change, gap))
        })
    };
    // An accepted candidate pattern learned on this very service comes
    // first; then the library's general patterns.
    let pattern_for = |own: bool, service: &str, signal: &str| {
        let fits = |p: &&Pattern| {
            p.matches(signal, On::SelfNode)
                && own != p.symptoms.iter().any(|s| s.on == On::Callers)
                && p.change_symptom().is_none()
        };
        // (learned from this service's own incidents: whether its callers
        // suffer too is not part of it)
        patterns
            .iter()
            .filter(|p| p.service.as_deref() == Some(service))
            .find(|p| p.matches(signal, On::SelfNode) && p.change_symptom().is_none())
            .or_else(|| patterns.iter().filter(|p| p.service.is_none()).find(fits))
    };
    let total: f64 = d
        .candidates
        .iter()
        .filter(|c| c.root)
        .map(|c| c.score.max(0.0))
        .sum();
    let mut hyps: Vec<Hypothesis> = Vec::with_capacity(d.candidates.len());
    let mut changed: Vec<bool> = Vec::with_capacity(d.candidates.len());
    for (i, c) in d.candidates.iter().enumerate() {
        let evidence = if i == 0 {
            evidence_match(d)
        } else if total > 0.0 {
            (c.score.max(0.0) / total * c.explains * if c.root { 1.0 } else { 0.5 }).clamp(0.0, 1.0)
        } else {
            0.0
        };
        let signal = signal_names.get(c.signal).copied().unwrap_or("latency");
        let own = c.node == entry;
        let service = topo.name(c.node);
        let with_change = after_change(c, own, signal);
        let p = with_change
            .map(|(p, _, _)| p)
            .or_else(|| pattern_for(own, service, signal));
        let prior = p.map_or(NO_PATTERN_PRIOR, |p| p.prior);
        let pattern = p.map_or("unmatched", |p| p.name.as_str());
        let conf = Confidence::new(prior, evidence, learned_for(pattern, c.node, signal));
        let change_text = with_change
            .map(|(_, ch, gap)| change_text(service, ch, gap, changes.step_ms))
            .unwrap_or_default();
        changed.push(with_change.is_some());
        hyps.push(Hypothesis {
            service: service.to_string(),
            signal: signal.into(),
            pattern: pattern.into(),
            confidence: conf.value,
            prior: conf.prior,
            evidence: conf.evidence,
            learned: conf.learned,
            victims: c.victims.iter().map(|&v| topo.name(v).to_string()).collect(),
            evidence_text: format!(
                "{signal} z {:.1} over threshold {:.1} from step {}; explains {:.0}% of anomalous services{}{}{change_text}",
                c.z,
                c.threshold,
                c.onset,
                c.explains * 100.0,
                if own && c.score == 0.0 {
                    // medic_rca's last resort: the target itself, not
                    // anomalous against its own history.
                    "; within its own past range, and nothing anomalous beneath it accounts for half of its change: its own cause by elimination (no confidence)"
                } else if c.root {
                    "; nothing it calls is anomalous"
                } else {
                    "; something it calls is anomalous too"
                },
                if c.onset_ok { "" } else { "; started after the symptom" },
            ),
        });
    }
    // A change makes its service a more likely cause than its callers: a
    // changed root that the top root calls (the top is one of its victims)
    // goes first.
    let top_root = d.candidates.first().is_some_and(|c| c.root);
    if top_root && changed.first() == Some(&false) {
        let top = hyps.first().map(|h| h.service.clone()).unwrap_or_default();
        let promoted = (1..hyps.len())
            .find(|&i| changed[i] && d.candidates[i].root && hyps[i].victims.contains(&top));
        if let Some(i) = promoted {
            let mut h = hyps.remove(i);
            h.evidence_text.push_str(&format!(
                "; ranked above its caller {top}: changed just before"
            ));
            hyps.insert(0, h);
        }
    }
    DiagnosisReport { hypotheses: hyps }
}

/// "; after a deploy of api (version v2, by ci: note) 12.0 s before the
/// onset" (a `config` change: "after a config change of ...").
fn change_text(service: &str, c: &RecordedChange, gap_ms: i64, step_ms: u64) -> String {
    let mut what = Vec::new();
    if let Some(v) = &c.version {
        what.push(format!("version {v}"));
    }
    what.push(format!("by {}", c.by));
    let mut detail = what.join(", ");
    if let Some(n) = &c.note {
        detail.push_str(&format!(": {n}"));
    }
    let secs = gap_ms.unsigned_abs() as f64 / 1e3;
    let step = i64::try_from(step_ms).unwrap_or(i64::MAX);
    // The onset is dated at the start of its step: a change recorded later
    // in that step came at most a step before the first anomalous sample.
    let when = if gap_ms >= 0 {
        format!("{secs:.1} s before the onset")
    } else if gap_ms > -step {
        format!("in the onset's step ({step_ms} ms)")
    } else {
        format!("{secs:.1} s after the onset")
    };
    let kind = match c.kind.as_str() {
        "config" => "config change",
        "canary" => "canary stage",
        k => k,
    };
    format!("; after a {kind} of {service} ({detail}) {when}")
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

/// What a notice teaches (issue 9 "learning"): the service whose last
/// action was judged and whether it worked. A verification that passed
/// reinforces the (pattern, action) pair; one that failed, or a staged
/// canary the judge failed (its changed instances are rolled back),
/// weakens it. A marginal canary verdict teaches nothing (it is judged
/// again, or stopped as failed without a final `fail`).
pub fn outcome_of(n: &medic_core::Notice) -> Option<(&str, bool)> {
    use medic_core::Notice;
    match n {
        Notice::VerifyPassed { service, .. } => Some((service, true)),
        Notice::VerifyFailed { service, .. } => Some((service, false)),
        Notice::CanaryVerdict {
            service, verdict, ..
        } if verdict.outcome.as_str() == "fail" => Some((service, false)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn verified_outcomes_and_failed_canaries_are_learned() {
        use medic_core::medic_canary::{Outcome, Verdict};
        use medic_core::{IncidentId, Notice};
        let inc = IncidentId("inc-1".into());
        let verdict = |outcome| Notice::CanaryVerdict {
            incident: inc.clone(),
            service: "api".into(),
            action: "deploy".into(),
            stage: 1,
            percent: 10,
            verdict: Verdict {
                outcome,
                score: 0.0,
                metrics: Vec::new(),
                explanation: String::new(),
            },
        };
        assert_eq!(outcome_of(&verdict(Outcome::Fail)), Some(("api", false)));
        assert_eq!(outcome_of(&verdict(Outcome::Marginal)), None);
        assert_eq!(outcome_of(&verdict(Outcome::Pass)), None);
        let passed = Notice::VerifyPassed {
            incident: inc.clone(),
            service: "db".into(),
            probe: "work".into(),
        };
        assert_eq!(outcome_of(&passed), Some(("db", true)));
    }

    #[test]
    fn the_shipped_library_states_the_ranking_default_links() {
        let lib = medic_config::load_patterns(&[]).unwrap();
        let got = leads(&lib);
        assert!(
            got.contains(&("queue_depth".into(), "latency".into())),
            "{got:?}"
        );
        assert!(
            got.contains(&("pool_in_use".into(), "latency".into())),
            "{got:?}"
        );
        // Traffic leads nowhere (overload's first symptom is `requests`).
        assert!(got.iter().all(|(c, _)| c != medic_rca::VOLUME), "{got:?}");
        // medic_rca::DEFAULT_LEADS (what `diagnose` and the eval use) is
        // the same set.
        let mut default: Vec<(String, String)> = medic_rca::DEFAULT_LEADS
            .iter()
            .map(|l| (l.cause.to_string(), l.effect.to_string()))
            .collect();
        default.sort();
        assert_eq!(got, default);
    }

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

    /// web's own latency rises within its noise (z < 3 at every step) while
    /// db is far slower than ever: no symptom, no diagnosis. An alert on web
    /// (a virtual probe's failing report: Alertmanager, a signal rule) says
    /// someone noticed the violation: that step is the symptom and db is
    /// named. A failing report on a service that is no entry, or one older
    /// than the window, changes nothing.
    #[test]
    fn an_alert_on_the_entry_is_a_noticed_violation() {
        let healthy = |_: u64, _: &str| (true, 10);
        let quiet = |b: u64, _: &str, _: &str| Some(1.0 + (b % 2) as f64);
        // History ~10–12 ms (drive adds b % 3): median 11, scale ≈ 1.5.
        let slow = |b: u64, svc: &str| match svc {
            "db" => (true, 200),
            _ if b >= 62 => (true, 13),
            _ => (true, 10),
        };
        let alert = |service: &str| ProbeReport {
            probe: "slo".into(),
            ..report(service, false, 0)
        };
        let run = |alert_on: Option<(&str, u64)>| {
            let mut r = chain();
            assert!(drive(&mut r, 0, 60, &healthy, &quiet).is_none());
            if let Some((svc, b)) = alert_on {
                let _ = r.observe(MonoTime::from_millis(b * STEP_MS + 1), &alert(svc));
            }
            let _ = drive(&mut r, 60, 1, &slow, &quiet);
            let mut last = None;
            for b in 61..66 {
                if let Some((svc, at)) = alert_on.filter(|&(_, at)| at == b) {
                    let _ = r.observe(MonoTime::from_millis(at * STEP_MS + 1), &alert(svc));
                }
                if let Some(d) = drive(&mut r, b, 1, &slow, &quiet) {
                    last = Some(d);
                }
            }
            last
        };
        assert!(run(None).is_none(), "no symptom without the alert");
        let d = run(Some(("web", 63))).expect("a diagnosis once noticed");
        assert_eq!(d.hypotheses[0].service, "db", "{d:?}");
        assert!(run(Some(("api", 63))).is_none(), "api is no entry");
        assert!(run(Some(("web", 30))).is_none(), "older than the window");
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
        let d = medic_rca::diagnose(&topo, &signals, Some(0), &Params::default()).unwrap();
        let mut lib = medic_config::load_patterns(&[]).unwrap();
        let rank = |lib: &[medic_config::Pattern]| {
            hypotheses(
                &topo,
                &d,
                0,
                &["latency"; 3],
                lib,
                &|_, _, _| 0.9,
                &Changes::NONE,
            )
            .hypotheses[0]
                .clone()
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

    fn deploy(by: &str, version: &str) -> RecordedChange {
        RecordedChange {
            at_ms: 0,
            kind: "deploy".into(),
            version: Some(version.into()),
            note: None,
            by: by.into(),
        }
    }

    #[test]
    fn a_change_just_before_failing_calls_names_error_spike_after_change() {
        let quiet = |b: u64, _: &str, _: &str| Some(1.0 + (b % 2) as f64);
        let healthy = |_: u64, _: &str| (true, 10);
        let failing = |_: u64, _: &str| (false, 10);
        // A deploy of db, then db fails and so do its callers.
        let mut r = chain();
        assert!(drive(&mut r, 0, 60, &healthy, &quiet).is_none());
        assert!(r.note_change(
            MonoTime::from_millis(59 * STEP_MS),
            "db",
            deploy("ci", "v2")
        ));
        assert!(!r.note_change(MonoTime::ZERO, "nope", deploy("ci", "v2")));
        let d = drive(&mut r, 60, 12, &failing, &quiet).expect("a diagnosis");
        let top = &d.hypotheses[0];
        assert_eq!(
            (top.service.as_str(), top.signal.as_str()),
            ("db", "availability")
        );
        assert_eq!(top.pattern, "error_spike_after_change", "{d:?}");
        assert!(
            top.evidence_text
                .contains("after a deploy of db (version v2, by ci)"),
            "{top:?}"
        );
        assert!(top.evidence_text.contains("s before the onset"), "{top:?}");
        assert!((top.prior - 0.8).abs() < 1e-9, "{top:?}");
        // A change on another service is no evidence about db.
        let mut r = chain();
        assert!(drive(&mut r, 0, 60, &healthy, &quiet).is_none());
        assert!(r.note_change(
            MonoTime::from_millis(59 * STEP_MS),
            "api",
            deploy("ci", "v2")
        ));
        let d = drive(&mut r, 60, 12, &failing, &quiet).expect("a diagnosis");
        assert_eq!(d.hypotheses[0].service, "db");
        assert_eq!(d.hypotheses[0].pattern, "dependency_down");
        assert!(!d.hypotheses[0].evidence_text.contains("deploy"));
        // At most MAX_CHANGES_PER_SERVICE kept, the newest.
        for i in 0..20 {
            r.note_change(
                MonoTime::from_millis(i),
                "web",
                deploy("ci", &format!("v{i}")),
            );
        }
        let web = r.names.iter().position(|n| n == "web").unwrap();
        assert_eq!(r.changes[web].len(), MAX_CHANGES_PER_SERVICE);
        assert_eq!(
            r.changes[web].back().and_then(|c| c.version.as_deref()),
            Some("v19")
        );
    }

    #[test]
    fn changes_read_back_again_are_not_duplicated_and_stay_in_time_order() {
        let at = |ms: i64, version: &str| RecordedChange {
            at_ms: ms,
            ..deploy("ci", version)
        };
        let db = |c: RecordedChange| ("db".to_string(), c);
        let mut r = chain();
        // Held: v1 read back at start, v2 recorded here (monotonic time).
        assert_eq!(r.merge_changes(vec![db(at(-300_000, "v1"))]), 1);
        assert!(r.note_change(MonoTime::from_millis(10_000), "db", deploy("ci", "v2")));
        // At a takeover the audit holds v1, v2 (its wall time a little
        // later than the monotonic one), v3 recorded by the old leader, a
        // second identical v3 and a change of an unknown service.
        let read = vec![
            db(at(-300_000, "v1")),
            db(at(10_040, "v2")),
            db(at(20_000, "v3")),
            db(at(25_000, "v3")),
            ("nope".to_string(), at(0, "v9")),
        ];
        assert_eq!(r.merge_changes(read.clone()), 2);
        let i = r.names.iter().position(|n| n == "db").unwrap();
        let versions = |r: &RcaState| -> Vec<(i64, String)> {
            r.changes[i]
                .iter()
                .map(|c| (c.at_ms, c.version.clone().unwrap_or_default()))
                .collect()
        };
        assert_eq!(
            versions(&r),
            [
                (-300_000, "v1".to_string()),
                (10_000, "v2".to_string()),
                (20_000, "v3".to_string()),
                (25_000, "v3".to_string())
            ]
        );
        // Read back once more: nothing new.
        assert_eq!(r.merge_changes(read), 0);
        // An older change than all of a full list is not kept; the list
        // stays in time order, the newest kept.
        let many: Vec<_> = (0..10).map(|k| db(at(30_000 + k * 1000, "w"))).collect();
        assert_eq!(r.merge_changes(many), 10);
        assert_eq!(r.changes[i].len(), MAX_CHANGES_PER_SERVICE);
        assert_eq!(r.merge_changes(vec![db(at(-900_000, "v0"))]), 0);
        let times: Vec<i64> = r.changes[i].iter().map(|c| c.at_ms).collect();
        assert_eq!(
            times,
            (2..10).map(|k| 30_000 + k * 1000).collect::<Vec<_>>()
        );
    }

    /// web -> api -> db, one signal `errors` per service (a rule of kind
    /// `errors`), windows of 8 steps; the history ~11.
    fn errors_diagnosis(recent: [Vec<f64>; 3]) -> (Topology, Diagnosis) {
        let names = vec!["web".to_string(), "api".to_string(), "db".to_string()];
        let topo = Topology::new(names, &[(0, 1), (1, 2)]).unwrap();
        let history: Vec<f64> = (0..60).map(|i| 10.0 + f64::from(i % 3)).collect();
        let signals: Vec<Signal<'_>> = recent
            .iter()
            .enumerate()
            .map(|(node, w)| Signal {
                node,
                name: "errors",
                direction: Direction::Up,
                history: &history,
                recent: w,
            })
            .collect();
        let d = medic_rca::diagnose(&topo, &signals, Some(0), &Params::default()).unwrap();
        (topo, d)
    }

    /// The changes of api (node 1) only, the window starting at `start` ms.
    fn rank_with(
        topo: &Topology,
        d: &Diagnosis,
        lib: &[medic_config::Pattern],
        api: &[(i64, &str)],
        start: u64,
    ) -> DiagnosisReport {
        let per_node: Vec<VecDeque<RecordedChange>> = (0..3)
            .map(|n| {
                if n == 1 {
                    api.iter()
                        .map(|&(at_ms, kind)| RecordedChange {
                            at_ms,
                            kind: kind.into(),
                            ..deploy("ci", "v7")
                        })
                        .collect()
                } else {
                    VecDeque::new()
                }
            })
            .collect();
        let changes = Changes {
            per_node: &per_node,
            window_start_ms: start,
            step_ms: STEP_MS,
            episode_onset_ms: None,
        };
        hypotheses(topo, d, 0, &["errors"; 3], lib, &|_, _, _| 0.9, &changes)
    }

    #[test]
    fn the_change_pattern_needs_a_change_within_its_window_and_before_the_onset() {
        // api's errors rise from step 2; web's with them; db is quiet.
        let mut api = vec![10.0; 8];
        let mut web = vec![10.0; 8];
        for s in 2..8 {
            api[s] = 200.0;
            web[s] = 210.0;
        }
        let (topo, d) = errors_diagnosis([web, api, vec![10.0; 8]]);
        let lib = medic_config::load_patterns(&[]).unwrap();
        let start: u64 = 3_600_000; // the window starts 1 h into the clock
        let onset = i64::try_from(start + 2 * STEP_MS).unwrap();
        let step = i64::try_from(STEP_MS).unwrap();
        let top = |changes: &[(i64, &str)]| {
            rank_with(&topo, &d, &lib, changes, start).hypotheses[0].clone()
        };
        // Without a change: as before (no pattern has `errors` first).
        let none = top(&[]);
        assert_eq!(
            (none.service.as_str(), none.pattern.as_str()),
            ("api", "unmatched")
        );
        assert_eq!(none, rank_with(&topo, &d, &lib, &[], 0).hypotheses[0]);
        // A deploy 10 minutes before the onset.
        let ten = top(&[(onset - 600_000, "deploy")]);
        assert_eq!(ten.service, "api");
        assert_eq!(ten.pattern, "error_spike_after_change");
        assert!(
            ten.evidence_text
                .contains("after a deploy of api (version v7, by ci) 600.0 s before the onset"),
            "{ten:?}"
        );
        assert!(ten.confidence > none.confidence, "{ten:?} vs {none:?}");
        // A config change in the onset's own step counts (recorded just after
        // the step began).
        let same = top(&[(onset + 100, "config")]);
        assert_eq!(same.pattern, "error_spike_after_change");
        assert!(
            same.evidence_text.contains(
                "after a config change of api (version v7, by ci) in the onset's step (500 ms)"
            ),
            "{same:?}"
        );
        // `within: 30m`: 31 minutes before is too long ago.
        assert_eq!(top(&[(onset - 31 * 60_000, "deploy")]).pattern, "unmatched");
        assert_eq!(
            top(&[(onset - 30 * 60_000, "deploy")]).pattern,
            "error_spike_after_change"
        );
        // `order`: a change after the onset (a later step) explains nothing.
        assert_eq!(top(&[(onset + 2 * step, "deploy")]).pattern, "unmatched");
        // The newest fitting change is the one named.
        let two = top(&[(onset - 600_000, "deploy"), (onset - 60_000, "config")]);
        assert!(two.evidence_text.contains("60.0 s before"), "{two:?}");
    }

    #[test]
    fn a_changed_callee_goes_before_its_caller_when_both_are_roots() {
        // web's errors rise a lot, api's (which web calls) a little: api
        // does not cover half of web's change, so both are roots and web,
        // the larger, ranks first.
        let mut api = vec![10.0; 8];
        let mut web = vec![10.0; 8];
        for s in 2..8 {
            api[s] = 60.0;
            web[s] = 410.0;
        }
        let (topo, d) = errors_diagnosis([web, api, vec![10.0; 8]]);
        assert!(
            d.candidates.len() >= 2 && d.candidates.iter().all(|c| c.root),
            "{d:?}"
        );
        let lib = medic_config::load_patterns(&[]).unwrap();
        let start: u64 = 3_600_000;
        let before = rank_with(&topo, &d, &lib, &[], start);
        assert_eq!(before.hypotheses[0].service, "web");
        // A deploy of api just before the onset: api first, web its victim.
        let after = rank_with(&topo, &d, &lib, &[(3_600_000, "deploy")], start);
        let top = &after.hypotheses[0];
        assert_eq!(top.service, "api", "{after:?}");
        assert_eq!(top.pattern, "error_spike_after_change");
        assert!(top.victims.contains(&"web".to_string()), "{top:?}");
        assert!(
            top.evidence_text.contains("ranked above its caller web"),
            "{top:?}"
        );
        assert_eq!(after.hypotheses[1].service, "web");
    }

    #[test]
    fn a_canary_stage_is_a_change_of_its_service_and_named_as_such() {
        let stage = medic_core::Notice::CanaryStage {
            incident: medic_core::IncidentId("inc-3".into()),
            service: "api".into(),
            action: "deploy_v2".into(),
            stage: 2,
            percent: 50,
            instances: vec!["api-1".into()],
            baseline: vec!["api-2".into()],
        };
        let (service, c) = change_of_notice(&stage).unwrap();
        assert_eq!(
            (service.as_str(), c.kind.as_str(), c.by.as_str()),
            ("api", "canary", "medic")
        );
        assert_eq!(
            change_text(&service, &c, 2_000, STEP_MS),
            "; after a canary stage of api (by medic: stage 2 of deploy_v2 on 50 % of the instances, incident inc-3) 2.0 s before the onset"
        );
        let other = medic_core::Notice::ModeChanged {
            service: Some("api".into()),
            mode: medic_core::Mode::DryRun,
            by: "ops".into(),
        };
        assert!(change_of_notice(&other).is_none());
    }

    #[test]
    fn a_change_recorded_before_a_restart_is_read_back_from_its_audit_record() {
        let rec = |kind: &str, ts: &str, payload: &str| medic_store::AuditRecord {
            seq: 1,
            ts: ts.into(),
            kind: kind.into(),
            payload: payload.into(),
            prev_hash: String::new(),
            hash: String::new(),
        };
        let started = time::OffsetDateTime::parse(
            "2026-11-28T02:00:00Z",
            &time::format_description::well_known::Rfc3339,
        )
        .unwrap();
        let payload =
            r#"{"service":"db","kind":"deploy","version":"v2","note":null,"by":"ci","v":1}"#;
        let (service, c) = change_of_audit(
            &rec("change.recorded", "2026-11-28T01:55:00Z", payload),
            started,
        )
        .unwrap();
        assert_eq!(service, "db");
        assert_eq!(
            c,
            RecordedChange {
                at_ms: -300_000,
                kind: "deploy".into(),
                version: Some("v2".into()),
                note: None,
                by: "ci".into(),
            }
        );
        assert!(change_of_audit(
            &rec("drill.reset", "2026-11-28T01:55:00Z", payload),
            started
        )
        .is_none());
        assert!(change_of_audit(&rec("change.recorded", "yesterday", payload), started).is_none());
        assert!(change_of_audit(
            &rec("change.recorded", "2026-11-28T01:55:00Z", "{}"),
            started
        )
        .is_none());
        // Restored 5 minutes before this start, it still fits an onset 10
        // minutes into it (15 minutes, within 30m).
        let mut r = chain();
        assert!(r.restore_change("db", c));
        let db = r.names.iter().position(|n| n == "db").unwrap();
        let changes = Changes {
            per_node: &r.changes,
            window_start_ms: 600_000,
            step_ms: STEP_MS,
            episode_onset_ms: None,
        };
        let lib = medic_config::load_patterns(&[]).unwrap();
        let spike = lib
            .iter()
            .find(|p| p.name == "error_spike_after_change")
            .unwrap();
        let (ch, other) = (
            spike.change_symptom().unwrap(),
            spike.symptom_after_change("availability").unwrap(),
        );
        let (_, gap) = changes.fitting(db, ch, other, 600_000).unwrap();
        assert_eq!(gap, 900_000);
    }
}
