//! The `signals:` section: metric, log and alert sources whose rules become
//! virtual probes of a service. See `docs/signals.md` for every field.
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Duration;

use medic_core::{FailureRule, ProbeSpec, RecoveryRule};

use crate::raw::{RawBreaker, RawFailure, RawRecovery, RawSignals};
use crate::Validator;

/// Default poll interval of a source.
pub const DEFAULT_SIGNAL_INTERVAL: Duration = Duration::from_secs(15);
/// Default request timeout of a Prometheus or scrape source.
pub const DEFAULT_SIGNAL_TIMEOUT: Duration = Duration::from_secs(5);
/// Default label naming the service on an Alertmanager alert.
pub const DEFAULT_SERVICE_LABEL: &str = "service";
/// Longest regex pattern accepted in a log rule.
pub const MAX_PATTERN_LEN: usize = 1024;

/// Where samples come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceKind {
    /// A Prometheus server; each rule on it is a PromQL instant query.
    Prometheus { url: String },
    /// A Prometheus text-format (or OpenMetrics) endpoint read directly.
    Scrape { url: String },
    /// A log file followed like `tail -F`.
    Log { path: PathBuf, from_start: bool },
}

impl SourceKind {
    pub fn as_str(&self) -> &'static str {
        match self {
            SourceKind::Prometheus { .. } => "prometheus",
            SourceKind::Scrape { .. } => "scrape",
            SourceKind::Log { .. } => "log",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceConfig {
    pub name: String,
    pub kind: SourceKind,
    /// How often the source is polled (and, for logs, the counting window).
    pub interval: Duration,
    /// HTTP request timeout (Prometheus and scrape sources).
    pub timeout: Duration,
}

/// Which series of a source a rule looks at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selector {
    /// A PromQL instant query; one series per returned label set.
    Query(String),
    /// Samples of one metric name from a scrape, optionally filtered by exact label values.
    Metric {
        name: String,
        labels: BTreeMap<String, String>,
    },
    /// Log lines matching this regex, counted per interval.
    Match(String),
}

/// How a rule turns samples into breach / no breach.
#[derive(Debug, Clone, PartialEq)]
pub enum Check {
    /// Breach when the value is above `above` or below `below`.
    Threshold {
        above: Option<f64>,
        below: Option<f64>,
    },
    /// Breach when the named medic-detect detector scores at least `threshold`.
    Detector { name: String, threshold: f64 },
}

/// What a rule reports when its source returns no samples for it.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Default)]
pub enum NoData {
    /// Report nothing (the default).
    #[default]
    Skip,
    /// Report healthy.
    Ok,
    /// Report failing (e.g. a heartbeat metric that vanished).
    Fail,
}

/// Noisy-rule circuit breaker settings.
#[derive(Debug, Clone, PartialEq)]
pub struct BreakerConfig {
    pub enabled: bool,
    /// Expected firings per hour.
    pub baseline_per_hour: f64,
    /// The rule is muted when it fires more than `factor * baseline_per_hour` in an hour.
    pub factor: f64,
    /// How long a muted rule stays muted.
    pub cooldown: Duration,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        BreakerConfig {
            enabled: true,
            baseline_per_hour: 10.0,
            factor: 3.0,
            cooldown: Duration::from_secs(15 * 60),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct RuleConfig {
    /// Rule name; also the virtual probe name in the engine.
    pub name: String,
    pub service: String,
    pub source: String,
    pub selector: Selector,
    pub check: Check,
    /// The breach must last this long before the rule reports failing.
    pub for_: Duration,
    pub no_data: NoData,
    pub breaker: BreakerConfig,
    /// `kind:` the rule's signal in root-cause ranking (issue 9): rules of
    /// the same kind on different services are one signal that propagates
    /// along `depends_on`, and patterns match it by this name (`errors`,
    /// `memory`, `queue_depth`, ...). `None`: the rule's name.
    pub kind: Option<String>,
}

impl RuleConfig {
    /// The rule's signal name in root-cause ranking: its `kind`, else its name.
    pub fn signal_kind(&self) -> &str {
        self.kind.as_deref().unwrap_or(&self.name)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertConfig {
    /// The alert's `alertname`; also the virtual probe name.
    pub name: String,
    /// Services this alert may be routed to (all services when the config names none).
    pub services: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertmanagerConfig {
    /// Alert label holding the service name.
    pub service_label: String,
    pub alerts: Vec<AlertConfig>,
}

impl Default for AlertmanagerConfig {
    fn default() -> Self {
        AlertmanagerConfig {
            service_label: DEFAULT_SERVICE_LABEL.to_string(),
            alerts: Vec::new(),
        }
    }
}

impl AlertmanagerConfig {
    /// Whether alert `name` for `service` is configured.
    pub fn accepts(&self, name: &str, service: &str) -> bool {
        self.alerts
            .iter()
            .any(|a| a.name == name && a.services.iter().any(|s| s == service))
    }
}

/// The validated `signals:` section (empty when absent).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SignalsConfig {
    pub sources: Vec<SourceConfig>,
    pub rules: Vec<RuleConfig>,
    pub alertmanager: AlertmanagerConfig,
    pub breaker: BreakerConfig,
}

impl SignalsConfig {
    pub fn source(&self, name: &str) -> Option<&SourceConfig> {
        self.sources.iter().find(|s| s.name == name)
    }

    pub fn is_empty(&self) -> bool {
        self.sources.is_empty() && self.rules.is_empty() && self.alertmanager.alerts.is_empty()
    }
}

/// What the signals section adds to each service: virtual probe specs.
pub(crate) type VirtualProbes = BTreeMap<String, Vec<ProbeSpec>>;

fn is_http(u: &str) -> bool {
    u.starts_with("http://") || u.starts_with("https://")
}

impl Validator {
    fn breaker(&mut self, base: &BreakerConfig, raw: Option<&RawBreaker>) -> BreakerConfig {
        let Some(r) = raw else {
            return base.clone();
        };
        let mut b = base.clone();
        if let Some(e) = r.enabled {
            b.enabled = e;
        }
        if let Some(v) = &r.baseline {
            if !(v.value.is_finite() && v.value > 0.0) {
                self.at(v.referenced, "breaker.baseline must be a positive number");
            } else {
                b.baseline_per_hour = v.value;
            }
        }
        if let Some(v) = &r.factor {
            if !(v.value.is_finite() && v.value >= 1.0) {
                self.at(v.referenced, "breaker.factor must be at least 1");
            } else {
                b.factor = v.value;
            }
        }
        if let Some(c) = r.cooldown {
            b.cooldown = c.0;
        }
        b
    }

    fn failure_rule(&mut self, f: Option<&RawFailure>) -> FailureRule {
        match f {
            Some(f) => {
                if f.consecutive.value == 0 {
                    self.at(
                        f.consecutive.referenced,
                        "failure.consecutive must be at least 1",
                    );
                }
                FailureRule {
                    consecutive: f.consecutive.value.max(1),
                    within: f.within.map_or(FailureRule::default().within, |d| d.0),
                }
            }
            // A signal already waited for its `for` duration: one report is evidence.
            None => FailureRule {
                consecutive: 1,
                within: FailureRule::default().within,
            },
        }
    }

    fn recovery_rule(&mut self, r: Option<&RawRecovery>) -> RecoveryRule {
        match r {
            Some(r) => {
                if r.consecutive.value == 0 {
                    self.at(
                        r.consecutive.referenced,
                        "recovery.consecutive must be at least 1",
                    );
                }
                RecoveryRule {
                    consecutive: r.consecutive.value.max(1),
                }
            }
            None => RecoveryRule { consecutive: 1 },
        }
    }

    /// Validate the signals section against the set of service names (and
    /// their probe names, to reject clashes). Returns the config and the
    /// virtual probes to add to each service.
    pub(crate) fn signals(
        &mut self,
        raw: Option<RawSignals>,
        services: &BTreeMap<String, BTreeSet<String>>,
    ) -> (SignalsConfig, VirtualProbes) {
        let mut virt: VirtualProbes = BTreeMap::new();
        let Some(raw) = raw else {
            return (SignalsConfig::default(), virt);
        };
        let breaker = self.breaker(&BreakerConfig::default(), raw.breaker.as_ref());
        let mut sources = Vec::new();
        for (name, s) in &raw.sources {
            let loc = s.referenced;
            let s = &s.value;
            let mut kinds = Vec::new();
            if let Some(p) = &s.prometheus {
                if !is_http(&p.url.value) {
                    self.at(
                        p.url.referenced,
                        format!(
                            "invalid URL `{}`: must start with http:// or https://",
                            p.url.value
                        ),
                    );
                }
                kinds.push(SourceKind::Prometheus {
                    url: p.url.value.trim_end_matches('/').to_string(),
                });
            }
            if let Some(p) = &s.scrape {
                if !is_http(&p.url.value) {
                    self.at(
                        p.url.referenced,
                        format!(
                            "invalid URL `{}`: must start with http:// or https://",
                            p.url.value
                        ),
                    );
                }
                kinds.push(SourceKind::Scrape {
                    url: p.url.value.clone(),
                });
            }
            if let Some(l) = &s.log {
                if l.path.value.trim().is_empty() {
                    self.at(l.path.referenced, "log path must not be empty");
                }
                kinds.push(SourceKind::Log {
                    path: PathBuf::from(&l.path.value),
                    from_start: l.from_start.unwrap_or(false),
                });
            }
            if kinds.len() != 1 {
                self.at(
                    loc,
                    format!(
                        "signal source {name}: exactly one of prometheus, scrape or log is required (found {})",
                        kinds.len()
                    ),
                );
            }
            let interval = s.interval.map_or(DEFAULT_SIGNAL_INTERVAL, |d| d.0);
            if interval < Duration::from_millis(100) {
                self.at(
                    loc,
                    format!("signal source {name}: interval must be at least 100ms"),
                );
            }
            if let Some(kind) = kinds.into_iter().next() {
                sources.push(SourceConfig {
                    name: name.clone(),
                    kind,
                    interval: interval.max(Duration::from_millis(100)),
                    timeout: s.timeout.map_or(DEFAULT_SIGNAL_TIMEOUT, |d| d.0),
                });
            }
        }

        let mut rules = Vec::new();
        for (name, r) in &raw.rules {
            let loc = r.referenced;
            let r = &r.value;
            let service = &r.service.value;
            match services.get(service) {
                None => self.at(
                    r.service.referenced,
                    format!("signal rule {name} names undefined service `{service}`"),
                ),
                Some(probes) if probes.contains(name) => self.at(
                    loc,
                    format!("signal rule {name} has the same name as a probe of service {service}"),
                ),
                Some(_) => {}
            }
            let source = raw.sources.get(&r.source.value);
            let kind = source.map(|s| {
                if s.value.prometheus.is_some() {
                    "prometheus"
                } else if s.value.scrape.is_some() {
                    "scrape"
                } else {
                    "log"
                }
            });
            if source.is_none() {
                self.at(
                    r.source.referenced,
                    format!(
                        "signal rule {name} names undefined source `{}`",
                        r.source.value
                    ),
                );
            }
            let selector = match (kind, &r.query, &r.metric, &r.matches) {
                (Some("prometheus"), Some(q), None, None) => {
                    if q.value.trim().is_empty() {
                        self.at(q.referenced, "query must not be empty");
                    }
                    Some(Selector::Query(q.value.clone()))
                }
                (Some("scrape"), None, Some(m), None) => {
                    if !valid_metric_name(&m.value) {
                        self.at(m.referenced, format!("invalid metric name `{}`", m.value));
                    }
                    Some(Selector::Metric {
                        name: m.value.clone(),
                        labels: r.labels.clone(),
                    })
                }
                (Some("log"), None, None, Some(m)) => {
                    if m.value.len() > MAX_PATTERN_LEN {
                        self.at(
                            m.referenced,
                            format!("match pattern longer than {MAX_PATTERN_LEN} bytes"),
                        );
                    } else if let Err(e) = regex::RegexBuilder::new(&m.value)
                        .size_limit(1 << 20)
                        .build()
                    {
                        let first = e.to_string().lines().last().unwrap_or("").to_string();
                        self.at(
                            m.referenced,
                            format!(
                                "invalid regex `{}`: {}",
                                m.value,
                                first.trim().trim_start_matches("error: ")
                            ),
                        );
                    }
                    Some(Selector::Match(m.value.clone()))
                }
                (Some(k), _, _, _) => {
                    let want = match k {
                        "prometheus" => "`query`",
                        "scrape" => "`metric` (and optional `labels`)",
                        _ => "`match`",
                    };
                    self.at(
                        loc,
                        format!(
                            "signal rule {name}: a {k} source needs exactly {want} and none of the other selectors (query, metric, match)"
                        ),
                    );
                    None
                }
                (None, _, _, _) => None,
            };
            if !r.labels.is_empty() && r.metric.is_none() {
                self.at(
                    loc,
                    format!("signal rule {name}: `labels` only applies to `metric`"),
                );
            }
            let threshold_rule = r.above.is_some() || r.below.is_some();
            let check = match (&r.detector, threshold_rule) {
                (Some(d), false) => {
                    if medic_detect::by_name(&d.value).is_none() {
                        self.at(
                            d.referenced,
                            format!(
                                "unknown detector `{}` (expected one of: {})",
                                d.value,
                                medic_detect::NAMES.join(", ")
                            ),
                        );
                    }
                    let threshold = match &r.threshold {
                        Some(t) if t.value.is_finite() && t.value > 0.0 && t.value <= 1.0 => {
                            t.value
                        }
                        Some(t) => {
                            self.at(t.referenced, "threshold must be in (0, 1]");
                            0.9
                        }
                        None => 0.9,
                    };
                    Some(Check::Detector {
                        name: d.value.clone(),
                        threshold,
                    })
                }
                (None, true) => {
                    if let Some(t) = &r.threshold {
                        self.at(
                            t.referenced,
                            "threshold is the detector score cut-off; a static rule uses above/below",
                        );
                    }
                    for v in [&r.above, &r.below].into_iter().flatten() {
                        if !v.value.is_finite() {
                            self.at(v.referenced, "above/below must be a finite number");
                        }
                    }
                    Some(Check::Threshold {
                        above: r.above.as_ref().map(|v| v.value),
                        below: r.below.as_ref().map(|v| v.value),
                    })
                }
                (Some(_), true) => {
                    self.at(
                        loc,
                        format!(
                            "signal rule {name}: use either a detector or above/below, not both"
                        ),
                    );
                    None
                }
                (None, false) => {
                    self.at(
                        loc,
                        format!("signal rule {name}: needs `above`, `below` or `detector`"),
                    );
                    None
                }
            };
            let no_data = match &r.no_data {
                None => NoData::Skip,
                Some(n) => match n.value.as_str() {
                    "skip" => NoData::Skip,
                    "ok" => NoData::Ok,
                    "fail" => NoData::Fail,
                    other => {
                        self.at(
                            n.referenced,
                            format!("unknown no_data `{other}` (expected skip, ok or fail)"),
                        );
                        NoData::Skip
                    }
                },
            };
            let rule_breaker = self.breaker(&breaker, r.breaker.as_ref());
            let kind = r.kind.as_ref().and_then(|k| {
                let v = k.value.trim();
                if v.is_empty() || v == "latency" || v == "availability" {
                    self.at(
                        k.referenced,
                        format!(
                            "signal rule {name}: kind must be non-empty and not `latency` or `availability` (medic's own probe signals)"
                        ),
                    );
                    None
                } else {
                    Some(v.to_string())
                }
            });
            let failure = self.failure_rule(r.failure.as_ref());
            let recovery = self.recovery_rule(r.recovery.as_ref());
            virt.entry(service.clone()).or_default().push(ProbeSpec {
                name: name.clone(),
                failure,
                latency: None,
                recovery,
                event: false,
            });
            if let (Some(selector), Some(check)) = (selector, check) {
                rules.push(RuleConfig {
                    name: name.clone(),
                    service: service.clone(),
                    source: r.source.value.clone(),
                    selector,
                    check,
                    for_: r.for_.map_or(Duration::ZERO, |d| d.0),
                    no_data,
                    breaker: rule_breaker,
                    kind,
                });
            }
        }

        let mut am = AlertmanagerConfig::default();
        if let Some(a) = raw.alertmanager {
            if let Some(l) = &a.service_label {
                if l.value.trim().is_empty() {
                    self.at(l.referenced, "service_label must not be empty");
                } else {
                    am.service_label = l.value.clone();
                }
            }
            for (name, alert) in &a.alerts {
                let loc = alert.referenced;
                let alert = &alert.value;
                let targets: Vec<String> = match &alert.services {
                    Some(list) => {
                        for s in &list.value {
                            if !services.contains_key(s) {
                                self.at(
                                    list.referenced,
                                    format!("alert {name} names undefined service `{s}`"),
                                );
                            }
                        }
                        list.value.clone()
                    }
                    None => services.keys().cloned().collect(),
                };
                let recovery = self.recovery_rule(alert.recovery.as_ref());
                for s in &targets {
                    let clash = services.get(s).is_some_and(|p| p.contains(name))
                        || virt
                            .get(s)
                            .is_some_and(|v| v.iter().any(|p| &p.name == name));
                    if clash {
                        self.at(
                            loc,
                            format!(
                                "alert {name} has the same name as a probe or signal rule of service {s}"
                            ),
                        );
                    }
                }
                for s in &targets {
                    virt.entry(s.clone()).or_default().push(ProbeSpec {
                        name: name.clone(),
                        failure: FailureRule {
                            consecutive: 1,
                            within: FailureRule::default().within,
                        },
                        latency: None,
                        recovery: recovery.clone(),
                        // Alertmanager sends a firing alert once (and again
                        // after its repeat_interval): never excused at start.
                        event: true,
                    });
                }
                am.alerts.push(AlertConfig {
                    name: name.clone(),
                    services: targets,
                });
            }
        }
        (
            SignalsConfig {
                sources,
                rules,
                alertmanager: am,
                breaker,
            },
            virt,
        )
    }
}

/// `[a-zA-Z_:][a-zA-Z0-9_:]*`
pub fn valid_metric_name(s: &str) -> bool {
    let mut chars = s.chars();
    match chars.next() {
        Some(c) if c.is_ascii_alphabetic() || c == '_' || c == ':' => {}
        _ => return false,
    }
    chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}
