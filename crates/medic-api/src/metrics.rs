//! medic's own metrics: one prometheus-client [`Registry`], one `/metrics`.
//!
//! Served in the Prometheus text format (`text/plain; version=0.0.4`) unless
//! the scraper's `Accept` asks for OpenMetrics ([`negotiate`]). Counters,
//! gauges and histograms are fed from three places only: the daemon's notice
//! recorder ([`Metrics::observe_notice`], one `match` over the core's closed
//! `Notice` enum), the engine's state after every step
//! ([`Metrics::set_engine_state`]) and the probe runners
//! ([`Metrics::observe_probe`]). Counter sources kept elsewhere (the signal
//! layer's atomics) are read at scrape time through [`CounterSource`].
//!
//! Every label value comes from a bounded set: configured service, probe and
//! action names, and core enums. Never free text.
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use medic_core::{ActionStage, ActionStatus, Mode, Notice, PauseView, Phase};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// Content type of `/metrics` in the Prometheus text format.
pub const PROMETHEUS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";
/// Content type of `/metrics` in OpenMetrics.
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Counters read at scrape time: `(name ending in _total, help, value)`.
pub type CounterSource = Arc<dyn Fn() -> Vec<(&'static str, &'static str, u64)> + Send + Sync>;

/// Whether a [`SourceFamily`] is a counter or a gauge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceKind {
    Counter,
    Gauge,
}

/// One metric family read at scrape time from a subsystem that keeps its
/// own atomics (the notifier, the signal receiver). A counter's `name` ends
/// in `_total`. With a `label`, `values` holds one `(label value, value)`
/// per series (the label values come from a bounded set: configured channel
/// names, priorities, severities); without one, a single `("", value)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceFamily {
    pub name: &'static str,
    pub help: &'static str,
    pub kind: SourceKind,
    pub label: Option<&'static str>,
    pub values: Vec<(String, u64)>,
}

/// Families read at scrape time (see [`Metrics::add_source`]).
pub type FamilySource = Arc<dyn Fn() -> Vec<SourceFamily> + Send + Sync>;

const MODES: [Mode; 4] = [
    Mode::Disabled,
    Mode::DryRun,
    Mode::Conservative,
    Mode::Aggressive,
];
const PHASES: [Phase; 7] = [
    Phase::Monitoring,
    Phase::DetectingFailure,
    Phase::ConfirmingPattern,
    Phase::ExecutingHeal,
    Phase::Verifying,
    Phase::Resolved,
    Phase::ManualIntervention,
];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ActionLabels {
    action: String,
    /// Why the action ran: its stage (`direct`, `retry`, `rollback`, ...).
    reason: &'static str,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ProbeLabels {
    service: String,
    probe: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ServiceLabel {
    service: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabel {
    state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ModeLabel {
    mode: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabel {
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BreakerLabels {
    service: String,
    action: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BreakerTransitionLabels {
    service: String,
    action: String,
    to: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct JudgementLabel {
    judgement: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct QueueLabel {
    queue: &'static str,
}

/// The engine's state after a step, for the gauges.
#[derive(Debug, Clone)]
pub struct EngineState<'a> {
    pub mode: Mode,
    pub pauses: &'a [PauseView],
    pub mass_paused: bool,
    /// Phases of the open incidents.
    pub open_phases: &'a [Phase],
    /// `(service, autoheal disabled)` for every configured service.
    pub autoheal: &'a [(String, bool)],
    pub pending_approvals: usize,
    pub running_actions: usize,
}

/// One probe's series, held by its probe loop (see
/// [`Metrics::probe_observer`]).
pub struct ProbeObserver {
    duration: Histogram,
    labels: ProbeLabels,
    metrics: Arc<Metrics>,
}

impl ProbeObserver {
    /// One run: its duration, and a failure if it failed.
    pub fn observe(&self, ok: bool, latency: std::time::Duration) {
        self.duration.observe(latency.as_secs_f64());
        if !ok {
            self.metrics
                .probe_failures
                .get_or_create(&self.labels)
                .inc();
        }
    }
}

/// medic's metrics.
pub struct Metrics {
    registry: Registry,
    actions: Family<ActionLabels, Counter>,
    rollbacks: Counter,
    incidents: Counter,
    detections: Family<ServiceLabel, Counter>,
    incidents_by_state: Family<StateLabel, Gauge>,
    probe_failures: Family<ProbeLabels, Counter>,
    probe_duration: Family<ProbeLabels, Histogram>,
    verifications: Family<OutcomeLabel, Counter>,
    change_judgements: Family<JudgementLabel, Counter>,
    breaker_state: Family<BreakerLabels, Gauge>,
    breaker_transitions: Family<BreakerTransitionLabels, Counter>,
    audit: Counter,
    mode: Family<ModeLabel, Gauge>,
    paused_all: Gauge,
    pauses: Gauge,
    mass_paused: Gauge,
    autoheal_disabled: Family<ServiceLabel, Gauge>,
    approvals_pending: Gauge,
    actions_running: Gauge,
    queue_depth: Family<QueueLabel, Gauge>,
    probe_missed: Counter,
    outbox: Arc<AtomicU64>,
    families: Arc<std::sync::Mutex<Vec<NamedFamilySource>>>,
    ha: crate::ha::HaCell,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

fn probe_buckets() -> Histogram {
    Histogram::new([
        0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
    ])
}

#[derive(Debug)]
struct Sources {
    counters: Vec<NamedSource>,
    families: Arc<std::sync::Mutex<Vec<NamedFamilySource>>>,
    outbox: Arc<AtomicU64>,
}

struct NamedFamilySource(FamilySource);

impl std::fmt::Debug for NamedFamilySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FamilySource")
    }
}

fn encode_family(
    encoder: &mut DescriptorEncoder,
    fam: &SourceFamily,
) -> Result<(), std::fmt::Error> {
    use prometheus_client::metrics::gauge::ConstGauge;
    use prometheus_client::metrics::MetricType;
    let (base, ty) = match fam.kind {
        SourceKind::Counter => (
            fam.name.strip_suffix("_total").unwrap_or(fam.name),
            MetricType::Counter,
        ),
        SourceKind::Gauge => (fam.name, MetricType::Gauge),
    };
    let mut desc = encoder.encode_descriptor(base, fam.help, None, ty)?;
    let encode_one = |m: prometheus_client::encoding::MetricEncoder<'_>, v: u64| match fam.kind {
        SourceKind::Counter => ConstCounter::new(v).encode(m),
        SourceKind::Gauge => ConstGauge::new(i64::try_from(v).unwrap_or(i64::MAX)).encode(m),
    };
    match fam.label {
        None => {
            let v = fam.values.first().map_or(0, |(_, v)| *v);
            encode_one(desc, v)
        }
        Some(key) => {
            for (label_value, v) in &fam.values {
                let labels = [(key, label_value.as_str())];
                encode_one(desc.encode_family(&labels.as_slice())?, *v)?;
            }
            Ok(())
        }
    }
}

struct NamedSource(CounterSource);

impl std::fmt::Debug for NamedSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CounterSource")
    }
}

impl Collector for Sources {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        for src in &self.counters {
            for (name, help, value) in (src.0)() {
                let base = name.strip_suffix("_total").unwrap_or(name);
                let c = ConstCounter::new(value);
                let m = encoder.encode_descriptor(base, help, None, c.metric_type())?;
                c.encode(m)?;
            }
        }
        let families = self
            .families
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for src in families.iter() {
            for fam in (src.0)() {
                encode_family(&mut encoder, &fam)?;
            }
        }
        drop(families);
        let g = prometheus_client::metrics::gauge::ConstGauge::new(
            i64::try_from(self.outbox.load(Ordering::Relaxed)).unwrap_or(i64::MAX),
        );
        let m = encoder.encode_descriptor(
            "medic_outbox_depth",
            "Notifications waiting in the outbox (not yet accepted by a channel)",
            None,
            g.metric_type(),
        )?;
        g.encode(m)
    }
}

impl Metrics {
    /// A fresh registry with medic's metrics.
    pub fn new() -> Self {
        Metrics::with_sources(Vec::new())
    }

    /// medic's metrics plus counters read from `sources` at scrape time.
    pub fn with_sources(sources: Vec<CounterSource>) -> Self {
        let mut r = Registry::default();
        macro_rules! reg {
            ($name:literal, $help:literal, $m:expr) => {{
                let m = $m;
                r.register($name, $help, m.clone());
                m
            }};
        }
        let actions = reg!(
            "medic_actions",
            "Remediation actions finished, by configured action, reason (the stage it ran for: direct, retry, canary, rollout, revert, rollback, forced) and outcome",
            Family::<ActionLabels, Counter>::default()
        );
        let rollbacks = reg!(
            "medic_rollbacks",
            "Rollbacks started (undo of an action whose verification failed)",
            Counter::default()
        );
        let incidents = reg!("medic_incidents", "Incidents opened", Counter::default());
        let detections = reg!(
            "medic_detections",
            "Failures detected (incidents opened), by service",
            Family::<ServiceLabel, Counter>::default()
        );
        let incidents_by_state = reg!(
            "medic_incidents_open",
            "Open incidents by state",
            Family::<StateLabel, Gauge>::default()
        );
        let probe_failures = reg!(
            "medic_probe_failures",
            "Failed probes, by service and probe",
            Family::<ProbeLabels, Counter>::default()
        );
        let probe_duration = reg!(
            "medic_probe_duration_seconds",
            "Probe round-trip time, by service and probe",
            Family::<ProbeLabels, Histogram>::new_with_constructor(probe_buckets)
        );
        let probe_missed = reg!(
            "medic_probe_missed_intervals",
            "Scheduled probe runs skipped because the previous run or the scheduler was late",
            Counter::default()
        );
        let verifications = reg!(
            "medic_verifications",
            "Heal verifications, by outcome (passed, failed)",
            Family::<OutcomeLabel, Counter>::default()
        );
        let change_judgements = reg!(
            "medic_change_verifications",
            "Changes verified against their baseline, by judgement (better, not_better, worse_failures, worse_latency)",
            Family::<JudgementLabel, Counter>::default()
        );
        let breaker_state = reg!(
            "medic_executor_breaker_state",
            "Executor circuit breaker per service and action: 0 closed, 1 half-open, 2 open (set on each transition)",
            Family::<BreakerLabels, Gauge>::default()
        );
        let breaker_transitions = reg!(
            "medic_executor_breaker_transitions",
            "Executor circuit breaker transitions, by service, action and new state",
            Family::<BreakerTransitionLabels, Counter>::default()
        );
        let audit = reg!(
            "medic_audit_records",
            "Audit records appended",
            Counter::default()
        );
        let mode = reg!(
            "medic_mode",
            "The global mode: 1 for the current one, 0 for the others",
            Family::<ModeLabel, Gauge>::default()
        );
        let paused_all = reg!(
            "medic_automation_paused",
            "1 while the global kill switch (a pause of every service and action) is on",
            Gauge::default()
        );
        let pauses = reg!(
            "medic_pauses",
            "Active pauses of any scope",
            Gauge::default()
        );
        let mass_paused = reg!(
            "medic_mass_incident_latched",
            "1 while the mass-incident latch holds all automation",
            Gauge::default()
        );
        let autoheal_disabled = reg!(
            "medic_autoheal_disabled",
            "1 for a service whose automation was disabled after repeated failed heals",
            Family::<ServiceLabel, Gauge>::default()
        );
        let approvals_pending = reg!(
            "medic_approvals_pending",
            "Actions waiting for a human approval",
            Gauge::default()
        );
        let actions_running = reg!(
            "medic_actions_running",
            "Actions in flight",
            Gauge::default()
        );
        let queue_depth = reg!(
            "medic_queue_depth",
            "Messages waiting in medic's bounded queues",
            Family::<QueueLabel, Gauge>::default()
        );
        let outbox = Arc::new(AtomicU64::new(0));
        let families = Arc::new(std::sync::Mutex::new(Vec::new()));
        r.register_collector(Box::new(Sources {
            counters: sources.into_iter().map(NamedSource).collect(),
            families: families.clone(),
            outbox: outbox.clone(),
        }));
        let ha = crate::ha::HaCell::default();
        r.register_collector(Box::new(ha.clone()));
        for m in MODES {
            mode.get_or_create(&ModeLabel { mode: m.as_str() }).set(0);
        }
        for p in PHASES {
            incidents_by_state
                .get_or_create(&StateLabel { state: p.as_str() })
                .set(0);
        }
        for o in ["passed", "failed"] {
            let _ = verifications.get_or_create(&OutcomeLabel { outcome: o });
        }
        Metrics {
            registry: r,
            actions,
            rollbacks,
            incidents,
            detections,
            incidents_by_state,
            probe_failures,
            probe_duration,
            probe_missed,
            verifications,
            change_judgements,
            breaker_state,
            breaker_transitions,
            audit,
            mode,
            paused_all,
            pauses,
            mass_paused,
            autoheal_disabled,
            approvals_pending,
            actions_running,
            queue_depth,
            outbox,
            families,
            ha,
        }
    }

    /// Adds metric families read at scrape time from another subsystem's
    /// own counters (the notifier's, the signal receiver's by priority), so
    /// they are served by this one registry and `/metrics`.
    pub fn add_source(&self, src: FamilySource) {
        self.families
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(NamedFamilySource(src));
    }

    /// `medic_actions_total{action,reason,outcome}` += 1. Every label comes
    /// from a bounded set: configured action names, [`ActionStage`] and
    /// [`ActionStatus`], never free text.
    pub fn inc_action(&self, action: &str, stage: ActionStage, outcome: ActionStatus) {
        self.actions
            .get_or_create(&ActionLabels {
                action: action.to_string(),
                reason: stage.as_str(),
                outcome: outcome.as_str(),
            })
            .inc();
    }

    /// `medic_incidents_total` += 1.
    pub fn inc_incident(&self) {
        self.incidents.inc();
    }

    /// `medic_probe_failures_total{service,probe}` += 1.
    pub fn inc_probe_failure(&self, service: &str, probe: &str) {
        self.probe_failures
            .get_or_create(&ProbeLabels {
                service: service.to_string(),
                probe: probe.to_string(),
            })
            .inc();
    }

    /// One probe run: its duration, and a failure if it failed.
    pub fn observe_probe(
        &self,
        service: &str,
        probe: &str,
        ok: bool,
        latency: std::time::Duration,
    ) {
        let l = ProbeLabels {
            service: service.to_string(),
            probe: probe.to_string(),
        };
        self.probe_duration
            .get_or_create(&l)
            .observe(latency.as_secs_f64());
        if !ok {
            self.probe_failures.get_or_create(&l).inc();
        }
    }

    /// The duration histogram of one probe, to keep and observe without a
    /// look-up (and its label strings) per run: [`ProbeObserver::observe`]
    /// is [`Metrics::observe_probe`] for a probe loop.
    pub fn probe_observer(self: &Arc<Self>, service: &str, probe: &str) -> ProbeObserver {
        let labels = ProbeLabels {
            service: service.to_string(),
            probe: probe.to_string(),
        };
        ProbeObserver {
            duration: self.probe_duration.get_or_create(&labels).clone(),
            labels,
            metrics: self.clone(),
        }
    }

    /// `n` scheduled probe runs were skipped (`medic_probe_missed_intervals_total`).
    pub fn inc_probe_missed(&self, n: u64) {
        self.probe_missed.inc_by(n);
    }

    /// `medic_audit_records_total` += 1.
    pub fn inc_audit(&self) {
        self.audit.inc();
    }

    /// Counts what a recorded notice says happened.
    pub fn observe_notice(&self, n: &Notice) {
        match n {
            Notice::IncidentOpened { service, .. } => {
                self.detections
                    .get_or_create(&ServiceLabel {
                        service: service.clone(),
                    })
                    .inc();
            }
            Notice::VerifyPassed { .. } => {
                self.verifications
                    .get_or_create(&OutcomeLabel { outcome: "passed" })
                    .inc();
            }
            Notice::VerifyFailed { .. } => {
                self.verifications
                    .get_or_create(&OutcomeLabel { outcome: "failed" })
                    .inc();
            }
            Notice::ActionIntent {
                stage: ActionStage::Rollback,
                ..
            } => {
                self.rollbacks.inc();
            }
            Notice::VerifyJudged { judgement, .. } => {
                self.change_judgements
                    .get_or_create(&JudgementLabel { judgement })
                    .inc();
            }
            Notice::BreakerChanged {
                service,
                action,
                to,
                ..
            } => {
                let level = match *to {
                    "open" => 2,
                    "half_open" => 1,
                    _ => 0,
                };
                self.breaker_state
                    .get_or_create(&BreakerLabels {
                        service: service.clone(),
                        action: action.clone(),
                    })
                    .set(level);
                self.breaker_transitions
                    .get_or_create(&BreakerTransitionLabels {
                        service: service.clone(),
                        action: action.clone(),
                        to,
                    })
                    .inc();
            }
            _ => {}
        }
    }

    /// The gauges of the engine's state after a step.
    pub fn set_engine_state(&self, s: &EngineState<'_>) {
        for m in MODES {
            self.mode
                .get_or_create(&ModeLabel { mode: m.as_str() })
                .set(i64::from(m == s.mode));
        }
        let all = s
            .pauses
            .iter()
            .any(|p| p.service.is_none() && p.kind.is_none());
        self.paused_all.set(i64::from(all));
        self.pauses.set(gauge(s.pauses.len()));
        self.mass_paused.set(i64::from(s.mass_paused));
        for p in PHASES {
            let n = s.open_phases.iter().filter(|x| **x == p).count();
            self.incidents_by_state
                .get_or_create(&StateLabel { state: p.as_str() })
                .set(gauge(n));
        }
        for (service, disabled) in s.autoheal {
            self.autoheal_disabled
                .get_or_create(&ServiceLabel {
                    service: service.clone(),
                })
                .set(i64::from(*disabled));
        }
        self.approvals_pending.set(gauge(s.pending_approvals));
        self.actions_running.set(gauge(s.running_actions));
    }

    /// `medic_queue_depth{queue}`.
    pub fn set_queue_depth(&self, queue: &'static str, depth: usize) {
        self.queue_depth
            .get_or_create(&QueueLabel { queue })
            .set(gauge(depth));
    }

    /// The notification outbox's depth, shared with the sender.
    pub fn outbox(&self) -> Arc<AtomicU64> {
        self.outbox.clone()
    }

    /// This instance's place in its HA cluster (`ha:`), for `/readyz` and
    /// the `medic_ha_*` gauges (none without `ha:`).
    pub fn ha(&self) -> &crate::ha::HaCell {
        &self.ha
    }

    /// The registry, e.g. for encoding elsewhere.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// OpenMetrics text of every metric (ends with `# EOF`).
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail; an encoder error would only
        // truncate the output, which is better than panicking.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }

    /// The Prometheus text format (0.0.4) of every metric.
    pub fn encode_prometheus(&self) -> String {
        to_prometheus_text(&self.encode())
    }
}

fn gauge(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Rewrites OpenMetrics text into the Prometheus text format: a counter
/// family's `# HELP`/`# TYPE` name its `_total` sample, and the
/// OpenMetrics-only `# UNIT` and `# EOF` lines go.
pub fn to_prometheus_text(om: &str) -> String {
    let counters: std::collections::BTreeSet<&str> = om
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(om.len());
    for line in om.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        let renamed = ["# HELP ", "# TYPE "].iter().find_map(|p| {
            let rest = line.strip_prefix(p)?;
            let (name, tail) = rest.split_once(' ')?;
            (counters.contains(name) && !name.ends_with("_total"))
                .then(|| format!("{p}{name}_total {tail}"))
        });
        match renamed {
            Some(l) => out.push_str(&l),
            None => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

/// Which format the `Accept` header asks for: OpenMetrics only when it names
/// `application/openmetrics-text`; the Prometheus text format otherwise.
pub fn wants_openmetrics(accept: Option<&str>) -> bool {
    accept.is_some_and(|a| {
        a.split(',').any(|part| {
            let mut it = part.split(';');
            let mime = it.next().unwrap_or("").trim();
            let q_zero = it.any(|p| {
                p.trim()
                    .strip_prefix("q=")
                    .and_then(|q| q.trim().parse::<f32>().ok())
                    .is_some_and(|q| q <= 0.0)
            });
            mime.eq_ignore_ascii_case("application/openmetrics-text") && !q_zero
        })
    })
}

/// `(content type, body)` of `/metrics` for this `Accept` header.
pub fn negotiate(metrics: &Metrics, accept: Option<&str>) -> (&'static str, String) {
    if wants_openmetrics(accept) {
        (OPENMETRICS_CONTENT_TYPE, metrics.encode())
    } else {
        (PROMETHEUS_CONTENT_TYPE, metrics.encode_prometheus())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_header_picks_the_format() {
        assert!(!wants_openmetrics(None));
        assert!(!wants_openmetrics(Some("text/plain")));
        assert!(!wants_openmetrics(Some("*/*")));
        // What Prometheus 2.x sends.
        assert!(wants_openmetrics(Some(
            "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
        )));
        assert!(!wants_openmetrics(Some("application/openmetrics-text;q=0")));
    }

    #[test]
    fn prometheus_text_names_counters_by_their_sample() {
        let m = Metrics::new();
        m.inc_audit();
        m.observe_probe("web", "hz", true, std::time::Duration::from_millis(3));
        let om = m.encode();
        assert!(om.contains("# TYPE medic_audit_records counter"), "{om}");
        assert!(om.ends_with("# EOF\n"));
        let text = m.encode_prometheus();
        assert!(text.contains("# HELP medic_audit_records_total Audit records appended"));
        assert!(text.contains("# TYPE medic_audit_records_total counter"));
        assert!(text.contains("medic_audit_records_total 1"));
        assert!(!text.contains("# EOF"));
        assert!(text.contains("# TYPE medic_probe_duration_seconds histogram"));
    }

    #[test]
    fn families_from_a_source_are_served_with_their_labels() {
        let m = Metrics::new();
        m.add_source(Arc::new(|| {
            vec![
                SourceFamily {
                    name: "medic_notify_delivered_total",
                    help: "Notifications accepted, by channel",
                    kind: SourceKind::Counter,
                    label: Some("channel"),
                    values: vec![("hook".into(), 3), ("slack".into(), 1)],
                },
                SourceFamily {
                    name: "medic_notify_outbox_capacity",
                    help: "Most notifications the outbox holds",
                    kind: SourceKind::Gauge,
                    label: None,
                    values: vec![(String::new(), 100)],
                },
            ]
        }));
        let text = m.encode_prometheus();
        assert!(
            text.contains("# TYPE medic_notify_delivered_total counter"),
            "{text}"
        );
        assert!(
            text.contains("medic_notify_delivered_total{channel=\"hook\"} 3"),
            "{text}"
        );
        assert!(
            text.contains("medic_notify_delivered_total{channel=\"slack\"} 1"),
            "{text}"
        );
        assert!(text.contains("# TYPE medic_notify_outbox_capacity gauge"));
        assert!(text.contains("medic_notify_outbox_capacity 100"), "{text}");
        let om = m.encode();
        assert!(om.contains("# TYPE medic_notify_delivered counter"), "{om}");
        assert!(om.ends_with("# EOF\n"));
    }
}
