//! medic-signal: metric, log and alert signals as virtual probes.
//!
//! Every signal rule of `medic.yaml`'s `signals:` section is a virtual probe
//! of its service: each evaluation sends a [`ProbeReport`] with
//! `probe = rule name` (failing with [`medic_core::ProbeFailure::Other`] when
//! the rule's threshold or detector condition held for its `for` duration).
//! Alertmanager alerts become reports for a probe named after the alert.
//! `medic-config` already adds these virtual probes to the engine config, so
//! the engine treats them like any other probe.
//!
//! # Wiring (daemon)
//! ```text
//! let (hooks, mut events) = medic_signal::SignalHooks::new();
//! let tasks = medic_signal::spawn_sources(&cfg.signals, report_tx.clone(), shutdown_rx.clone(), &hooks);
//! let api = api.merge(medic_signal::alertmanager_router(&cfg.signals, report_tx.clone(), &hooks));
//! // drain `events` into the audit log: event.to_audit()
//! // read hooks.metrics.snapshot() into the daemon's one registry (/metrics)
//! ```
#![forbid(unsafe_code)]

pub mod alertmanager;
pub mod breaker;
pub mod expo;
pub mod logtail;
pub mod rule;
pub mod shed;
pub mod sources;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use medic_config::SignalsConfig;
use medic_core::ProbeReport;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

pub use alertmanager::{alertmanager_router, WEBHOOK_PATH};
pub use rule::{Badness, Now, Observation, Outcome, RuleState};

/// Capacity of the sample channel ([`SignalHooks::with_samples`]); samples
/// beyond it are dropped (and counted in `events_dropped`).
pub const SAMPLE_QUEUE: usize = 1024;

/// One rule's value at one evaluation, for root-cause ranking (issue 9).
#[derive(Clone, Debug, PartialEq)]
pub struct SignalSample {
    pub service: String,
    /// The rule's signal kind (`kind:`, else the rule's name).
    pub rule: String,
    pub value: f64,
    pub direction: Badness,
}

/// Capacity of the event channel; events beyond it are dropped (and counted).
pub const EVENT_QUEUE: usize = 256;

/// Something the binary should record in its audit log.
#[derive(Clone, Debug, PartialEq)]
pub enum SignalEvent {
    /// A noisy rule fired more than its limit in the last hour and is muted.
    RuleMuted {
        rule: String,
        service: String,
        /// Firings counted in the last hour.
        rate_per_hour: f64,
        /// `baseline × factor`.
        limit_per_hour: f64,
        /// When the rule is re-enabled (Unix milliseconds).
        until_unix_ms: u64,
    },
    /// A muted rule's cooldown ended.
    RuleUnmuted { rule: String, service: String },
}

/// A signal event as an audit record: its kind and string fields.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignalAudit {
    pub kind: &'static str,
    pub fields: Vec<(&'static str, String)>,
}

impl SignalAudit {
    pub fn field(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }
}

impl SignalEvent {
    /// The event as an audit record (`signal.rule_muted` / `signal.rule_unmuted`).
    pub fn to_audit(&self) -> SignalAudit {
        match self {
            SignalEvent::RuleMuted {
                rule,
                service,
                rate_per_hour,
                limit_per_hour,
                until_unix_ms,
            } => SignalAudit {
                kind: "signal.rule_muted",
                fields: vec![
                    ("rule", rule.clone()),
                    ("service", service.clone()),
                    ("rate_per_hour", format!("{rate_per_hour}")),
                    ("limit_per_hour", format!("{limit_per_hour}")),
                    ("until_unix_ms", until_unix_ms.to_string()),
                ],
            },
            SignalEvent::RuleUnmuted { rule, service } => SignalAudit {
                kind: "signal.rule_unmuted",
                fields: vec![("rule", rule.clone()), ("service", service.clone())],
            },
        }
    }
}

/// Counters of the signal subsystem (monotonic, since start).
#[derive(Debug, Default)]
pub struct SignalMetrics {
    pub samples: AtomicU64,
    pub reports_ok: AtomicU64,
    pub reports_failing: AtomicU64,
    pub rules_muted: AtomicU64,
    pub source_errors: AtomicU64,
    pub alerts_received: AtomicU64,
    pub alerts_ignored: AtomicU64,
    pub webhook_rejected: AtomicU64,
    pub events_dropped: AtomicU64,
    /// Low-priority alerts shed under load (issue 12).
    pub alerts_shed: AtomicU64,
    /// Alerts that reached the engine's queue, by priority (low, high,
    /// critical): [`SignalMetrics::families`].
    pub alerts_admitted: [AtomicU64; 3],
    /// Alerts received for a configured alert and service, by priority.
    pub alerts_by_priority: [AtomicU64; 3],
}

impl SignalMetrics {
    pub fn inc(&self, c: &AtomicU64) {
        c.fetch_add(1, Ordering::Relaxed);
    }

    pub fn add(&self, c: &AtomicU64, n: u64) {
        c.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn count_report(&self, ok: bool) {
        if ok {
            self.inc(&self.reports_ok);
        } else {
            self.inc(&self.reports_failing);
        }
    }

    /// The per-priority counters as labeled families for medic's one
    /// `/metrics` (`medic_api::Metrics::add_source`).
    pub fn families(&self) -> Vec<medic_api::SourceFamily> {
        use medic_api::{SourceFamily, SourceKind};
        let by = |a: &[AtomicU64; 3]| -> Vec<(String, u64)> {
            ["low", "high", "critical"]
                .iter()
                .zip(a)
                .map(|(p, c)| (p.to_string(), c.load(Ordering::Relaxed)))
                .collect()
        };
        vec![
            SourceFamily {
                name: "medic_signal_alerts_by_priority_total",
                help: "Alerts received for a configured alert and service, by priority (from the severity label)",
                kind: SourceKind::Counter,
                label: Some("priority"),
                values: by(&self.alerts_by_priority),
            },
            SourceFamily {
                name: "medic_signal_alerts_admitted_total",
                help: "Alerts that reached the engine's queue, by priority (critical and high are never shed)",
                kind: SourceKind::Counter,
                label: Some("priority"),
                values: by(&self.alerts_admitted),
            },
        ]
    }

    /// `(metric name, help, value)` for every counter.
    pub fn snapshot(&self) -> Vec<(&'static str, &'static str, u64)> {
        let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
        vec![
            (
                "medic_signal_samples_total",
                "Samples evaluated by signal rules",
                g(&self.samples),
            ),
            (
                "medic_signal_reports_ok_total",
                "Healthy virtual-probe reports sent",
                g(&self.reports_ok),
            ),
            (
                "medic_signal_reports_failing_total",
                "Failing virtual-probe reports sent",
                g(&self.reports_failing),
            ),
            (
                "medic_signal_rules_muted_total",
                "Times a noisy rule was muted by the circuit breaker",
                g(&self.rules_muted),
            ),
            (
                "medic_signal_source_errors_total",
                "Failed polls of a signal source",
                g(&self.source_errors),
            ),
            (
                "medic_signal_alerts_received_total",
                "Alerts received from Alertmanager",
                g(&self.alerts_received),
            ),
            (
                "medic_signal_alerts_ignored_total",
                "Alerts ignored (unknown service or alert name)",
                g(&self.alerts_ignored),
            ),
            (
                "medic_signal_webhook_rejected_total",
                "Alertmanager webhook bodies rejected",
                g(&self.webhook_rejected),
            ),
            (
                "medic_signal_alerts_shed_total",
                "Low-priority alerts dropped because the engine queue was more than half full",
                g(&self.alerts_shed),
            ),
            (
                "medic_signal_events_dropped_total",
                "Signal events dropped because the event queue was full",
                g(&self.events_dropped),
            ),
        ]
    }
}

/// Where the signal subsystem sends events and counts things. Cheap to clone.
#[derive(Clone, Debug)]
pub struct SignalHooks {
    pub metrics: Arc<SignalMetrics>,
    events: mpsc::Sender<SignalEvent>,
    samples: Option<mpsc::Sender<SignalSample>>,
}

impl SignalHooks {
    /// Hooks and the receiving end of the event channel (bounded by [`EVENT_QUEUE`]).
    pub fn new() -> (SignalHooks, mpsc::Receiver<SignalEvent>) {
        let (tx, rx) = mpsc::channel(EVENT_QUEUE);
        (
            SignalHooks {
                metrics: Arc::new(SignalMetrics::default()),
                events: tx,
                samples: None,
            },
            rx,
        )
    }

    /// Also send every rule's value ([`SignalSample`]) to `tx` (without
    /// waiting: dropped and counted when it is full).
    pub fn with_samples(mut self, tx: mpsc::Sender<SignalSample>) -> SignalHooks {
        self.samples = Some(tx);
        self
    }

    /// Send a rule's value, if someone listens.
    pub fn sample(&self, s: SignalSample) {
        if let Some(tx) = &self.samples {
            if tx.try_send(s).is_err() {
                self.metrics.inc(&self.metrics.events_dropped);
            }
        }
    }

    /// Count and send an event without waiting; dropped (and counted) if the queue is full.
    pub fn emit(&self, ev: SignalEvent) {
        if matches!(ev, SignalEvent::RuleMuted { .. }) {
            self.metrics.inc(&self.metrics.rules_muted);
        }
        if self.events.try_send(ev).is_err() {
            self.metrics.inc(&self.metrics.events_dropped);
        }
    }
}

/// Start one task per configured source (each evaluating the rules on it).
/// Tasks stop when `shutdown` becomes true or its sender is dropped. Reports
/// go to `tx` as `T::from(report)` (producers wait when it is full), so the
/// daemon may pass its own input channel (`impl From<ProbeReport> for Msg`)
/// or a plain `mpsc::Sender<ProbeReport>`; events and counters go to `hooks`.
/// Must be called inside a Tokio runtime.
pub fn spawn_sources<T>(
    cfg: &SignalsConfig,
    tx: mpsc::Sender<T>,
    shutdown: watch::Receiver<bool>,
    hooks: &SignalHooks,
) -> Vec<JoinHandle<()>>
where
    T: From<ProbeReport> + Send + 'static,
{
    let mut by_source: BTreeMap<&str, Vec<RuleState>> = BTreeMap::new();
    for r in &cfg.rules {
        by_source
            .entry(r.source.as_str())
            .or_default()
            .push(RuleState::new(r.clone()));
    }
    let http = match reqwest::Client::builder()
        .user_agent(concat!("medic-signal/", env!("CARGO_PKG_VERSION")))
        .build()
    {
        Ok(c) => Some(c),
        Err(e) => {
            tracing::error!(error = %e, "cannot build the HTTP client; HTTP signal sources disabled");
            None
        }
    };
    let clock = sources::Clock::new();
    let mut handles = Vec::new();
    for src in &cfg.sources {
        let Some(rules) = by_source.remove(src.name.as_str()) else {
            tracing::info!(source = %src.name, "signal source has no rules; not polled");
            continue;
        };
        let http = match (&src.kind, &http) {
            (medic_config::SourceKind::Log { .. }, _) => None,
            (_, Some(c)) => Some(c.clone()),
            (_, None) => continue,
        };
        handles.push(tokio::spawn(sources::run_source(
            src.clone(),
            rules,
            http,
            tx.clone(),
            hooks.clone(),
            shutdown.clone(),
            clock,
        )));
    }
    handles
}
