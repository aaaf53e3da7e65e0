//! The replay itself: pure, no IO. Recorded samples go through each rule's
//! [`RuleState`] (its detectors and its noisy-rule breaker) in time order; the
//! rules' reports go into a real [`Engine`] in dry-run, driven by a simulated
//! clock (monotonic time = milliseconds since the first sample). What comes out
//! is collected into a [`Report`].

use std::collections::BTreeMap;
use std::time::Duration;

use medic_config::{Check, Config, RuleConfig};
use medic_core::{Command, Engine, Input, Mode, MonoTime, Notice};
use medic_signal::{Now, Observation, RuleState, SignalEvent};

/// One recorded series: a key (e.g. `metric{label="v"}` or a CSV's `category/name`) and its
/// samples `(unix ms, value)` in time order.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedSeries {
    /// Series key.
    pub key: String,
    /// Samples, sorted by time.
    pub points: Vec<(i64, f64)>,
}

/// The series a rule is evaluated on.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleData {
    /// The rule's name (as in `signals.rules`).
    pub rule: String,
    /// Its series.
    pub series: Vec<RecordedSeries>,
}

/// A transition of a rule from healthy to failing (it fired).
#[derive(Debug, Clone, PartialEq)]
pub struct Firing {
    /// Unix ms.
    pub at_ms: i64,
    /// The report's detail (worst series, value, score).
    pub detail: String,
}

/// The breaker muted a rule.
#[derive(Debug, Clone, PartialEq)]
pub struct Mute {
    /// Unix ms.
    pub at_ms: i64,
    /// Firings in the last hour.
    pub rate_per_hour: f64,
    /// The limit it exceeded.
    pub limit_per_hour: f64,
    /// When it is re-enabled (unix ms).
    pub until_ms: i64,
}

/// A governance decision on an incident (what medic would have done).
#[derive(Debug, Clone, PartialEq)]
pub struct DecisionRow {
    /// Unix ms.
    pub at_ms: i64,
    /// The action.
    pub action: String,
    /// Verdict (`would-act`, `deferred`, `pending-approval`, ...).
    pub verdict: String,
    /// Stable reason code, when blocked.
    pub reason_code: Option<String>,
    /// The engine's sentence.
    pub reason: String,
}

/// An incident the rule would have opened.
#[derive(Debug, Clone, PartialEq)]
pub struct IncidentRow {
    /// Incident id.
    pub id: String,
    /// Service.
    pub service: String,
    /// What opened it (`<rule> failing`).
    pub trigger: String,
    /// Unix ms.
    pub opened_ms: i64,
    /// Unix ms; `None` while still open at the end of the replay.
    pub closed_ms: Option<i64>,
    /// Outcome (`would-act`, `recovered`, `escalated`, ...), once known.
    pub outcome: Option<String>,
    /// Diagnosis.
    pub cause: String,
    /// Governance decisions, in order.
    pub decisions: Vec<DecisionRow>,
}

/// Per series: where the rule's condition held (the detections).
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesTrace {
    /// Series key.
    pub key: String,
    /// Samples.
    pub points: Vec<(i64, f64)>,
    /// Unix ms of the samples on which the rule's check breached.
    pub detections: Vec<i64>,
}

/// Everything one rule would have done.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleReport {
    /// Rule name.
    pub rule: String,
    /// Its service.
    pub service: String,
    /// Its condition, e.g. `detector default >= 0.5`.
    pub condition: String,
    /// Samples evaluated.
    pub samples: usize,
    /// Healthy → failing transitions.
    pub firings: Vec<Firing>,
    /// Breaker mutes.
    pub mutes: Vec<Mute>,
    /// Incidents opened by this rule.
    pub incidents: Vec<IncidentRow>,
    /// Per series, for plots.
    pub series: Vec<SeriesTrace>,
}

/// The whole replay.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// First and last sample replayed (unix ms).
    pub from_ms: i64,
    /// Last sample replayed (unix ms).
    pub to_ms: i64,
    /// Per rule, in config order.
    pub rules: Vec<RuleReport>,
    /// Notifications medic would have sent: (unix ms, title).
    pub notifications: Vec<(i64, String)>,
}

fn condition(rule: &RuleConfig) -> String {
    let mut s = match &rule.check {
        Check::Threshold { above, below } => {
            let mut p = Vec::new();
            if let Some(a) = above {
                p.push(format!("above {a}"));
            }
            if let Some(b) = below {
                p.push(format!("below {b}"));
            }
            p.join(" or ")
        }
        Check::Detector { name, threshold } => format!("detector {name} >= {threshold}"),
    };
    if rule.for_ > Duration::ZERO {
        s.push_str(&format!(" for {}", humanize(rule.for_)));
    }
    s
}

fn humanize(d: Duration) -> String {
    format!("{}s", d.as_secs_f64())
}

/// A per-series copy of the rule's check, to know which samples breached (the rule itself
/// only reports its worst series). Same detector, same inputs: the same scores.
struct Shadow {
    check: Check,
    detectors: BTreeMap<String, Box<dyn medic_detect::Detector>>,
}

impl Shadow {
    fn breached(&mut self, key: &str, unix_secs: i64, v: f64) -> bool {
        match &self.check {
            Check::Threshold { above, below } => {
                above.is_some_and(|a| v > a) || below.is_some_and(|b| v < b)
            }
            Check::Detector { name, threshold } => {
                if !self.detectors.contains_key(key) {
                    let Some(d) = medic_detect::by_name(name) else {
                        return false;
                    };
                    self.detectors.insert(key.to_string(), d);
                }
                self.detectors.get_mut(key).is_some_and(|d| {
                    let s = d.update(unix_secs, v);
                    s.is_finite() && s.clamp(0.0, 1.0) >= *threshold
                })
            }
        }
    }
}

/// Most engine deadlines fired between two samples.
pub const MAX_TIMEOUTS_PER_STEP: usize = 100_000;

struct Driver {
    engine: Engine,
    t0: i64,
    incidents: BTreeMap<String, IncidentRow>,
    order: Vec<String>,
    notifications: Vec<(i64, String)>,
    decisions: Vec<(String, DecisionRow)>,
}

impl Driver {
    fn unix(&self, m: MonoTime) -> i64 {
        self.t0
            .saturating_add(i64::try_from(m.as_millis()).unwrap_or(i64::MAX))
    }

    fn mono(&self, unix_ms: i64) -> MonoTime {
        MonoTime::from_millis(u64::try_from(unix_ms.saturating_sub(self.t0)).unwrap_or(0))
    }

    fn drain(&mut self, now: MonoTime) {
        let at_ms = self.unix(now);
        while let Some(n) = self.engine.poll_notice() {
            if let Notice::Decision {
                incident,
                action,
                verdict,
                reason_code,
                reason,
                ..
            } = n
            {
                // A step's notices come before its commands: the incident may not be known
                // yet, so decisions are attached at the end.
                self.decisions.push((
                    incident.0,
                    DecisionRow {
                        at_ms,
                        action,
                        verdict: verdict.as_str().to_string(),
                        reason_code: reason_code.map(|c| c.as_str().to_string()),
                        reason,
                    },
                ));
            }
        }
        while let Some(c) = self.engine.poll_command() {
            match c {
                Command::IncidentChanged(v) => {
                    let opened_ms = self.unix(v.opened_at);
                    let closed_ms = v.closed_at.map(|c| self.unix(c));
                    let id = v.id.0.clone();
                    let row = self.incidents.entry(id.clone()).or_insert_with(|| {
                        self.order.push(id.clone());
                        IncidentRow {
                            id,
                            service: v.service.clone(),
                            trigger: v.trigger.clone(),
                            opened_ms,
                            closed_ms: None,
                            outcome: None,
                            cause: String::new(),
                            decisions: Vec::new(),
                        }
                    });
                    row.closed_ms = closed_ms;
                    row.outcome = v.outcome.map(|o| o.as_str().to_string());
                    row.cause = v.cause;
                }
                Command::Notify(n) => self.notifications.push((at_ms, n.title)),
                // Dry-run never runs or cancels an action; nothing to execute in a replay.
                Command::RunAction(_)
                | Command::CancelAction { .. }
                | Command::CollectCanary(_) => {}
            }
        }
    }

    /// Fires every engine deadline up to `now`, each at its own time (at most
    /// [`MAX_TIMEOUTS_PER_STEP`] per step, so a deadline that never moves cannot hang a replay).
    fn advance(&mut self, now: MonoTime) {
        for _ in 0..MAX_TIMEOUTS_PER_STEP {
            match self.engine.poll_timeout() {
                Some(d) if d <= now => {
                    self.engine.handle_timeout(d);
                    self.drain(d);
                }
                _ => return,
            }
        }
    }
}

/// Replays `data` through `cfg`'s rules and engine (forced to dry-run: the global mode and
/// every service's mode). Rules not in `data` are not evaluated. Samples outside
/// `[from_ms, to_ms]` are ignored. `progress(done, total)` is called as samples are replayed.
#[must_use]
pub fn replay(
    cfg: &Config,
    data: &[RuleData],
    from_ms: i64,
    to_ms: i64,
    progress: &mut dyn FnMut(usize, usize),
) -> Report {
    // Every (time, rule index, series index, value), in time order; ties in rule order.
    let rules: Vec<&RuleConfig> = cfg
        .signals
        .rules
        .iter()
        .filter(|r| data.iter().any(|d| d.rule == r.name))
        .collect();
    let mut events: Vec<(i64, usize, usize, f64)> = Vec::new();
    let mut traces: Vec<Vec<SeriesTrace>> = Vec::with_capacity(rules.len());
    for (ri, r) in rules.iter().enumerate() {
        let mut tr = Vec::new();
        for d in data.iter().filter(|d| d.rule == r.name) {
            for s in &d.series {
                let si = tr.len();
                let pts: Vec<(i64, f64)> = s
                    .points
                    .iter()
                    .copied()
                    .filter(|(t, _)| (from_ms..=to_ms).contains(t))
                    .collect();
                events.extend(pts.iter().map(|&(t, v)| (t, ri, si, v)));
                tr.push(SeriesTrace {
                    key: s.key.clone(),
                    points: pts,
                    detections: Vec::new(),
                });
            }
        }
        traces.push(tr);
    }
    events.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
    let t0 = events.first().map_or(from_ms, |e| e.0);
    let mut ecfg = cfg.engine.clone();
    ecfg.mode = Mode::DryRun;
    for s in &mut ecfg.services {
        s.mode = None;
    }
    let mut drv = Driver {
        engine: Engine::new(ecfg, MonoTime::ZERO),
        t0,
        incidents: BTreeMap::new(),
        order: Vec::new(),
        notifications: Vec::new(),
        decisions: Vec::new(),
    };
    drv.engine.handle_input(
        MonoTime::ZERO,
        Input::WallClock {
            unix_ms: t0,
            utc_offset_minutes: Some(0),
        },
    );
    // Freeze windows of the replayed period, expanded from their cron as the daemon does.
    let last = events.last().map_or(to_ms, |e| e.0);
    let horizon =
        Duration::from_millis(u64::try_from(last.saturating_sub(t0)).unwrap_or(0) + 86_400_000);
    let windows: Vec<medic_core::FreezeWindow> = cfg
        .freeze_windows
        .iter()
        .flat_map(|f| f.windows(t0, horizon))
        .collect();
    if !windows.is_empty() {
        drv.engine
            .handle_input(MonoTime::ZERO, Input::FreezeWindows(windows));
    }
    drv.drain(MonoTime::ZERO);
    let mut states: Vec<RuleState> = rules.iter().map(|r| RuleState::new((*r).clone())).collect();
    let mut shadows: Vec<Shadow> = rules
        .iter()
        .map(|r| Shadow {
            check: r.check.clone(),
            detectors: BTreeMap::new(),
        })
        .collect();
    let mut reports: Vec<RuleReport> = rules
        .iter()
        .map(|r| RuleReport {
            rule: r.name.clone(),
            service: r.service.clone(),
            condition: condition(r),
            samples: 0,
            firings: Vec::new(),
            mutes: Vec::new(),
            incidents: Vec::new(),
            series: Vec::new(),
        })
        .collect();
    let mut firing = vec![false; rules.len()];
    let total = events.len();
    let mut i = 0;
    while i < events.len() {
        // One evaluation per (time, rule): all its series with a sample at that time.
        let (t, ri) = (events[i].0, events[i].1);
        let mut obs = Vec::new();
        while i < events.len() && events[i].0 == t && events[i].1 == ri {
            let (_, _, si, v) = events[i];
            let key = traces[ri][si].key.clone();
            if shadows[ri].breached(&key, t.div_euclid(1000), v) {
                traces[ri][si].detections.push(t);
            }
            obs.push(Observation {
                series: key,
                value: v,
            });
            i += 1;
        }
        let mono = drv.mono(t);
        drv.advance(mono);
        let now = Now {
            mono_ms: mono.as_millis(),
            unix_ms: u64::try_from(t).unwrap_or(0),
        };
        reports[ri].samples += obs.len();
        let out = states[ri].evaluate(now, &obs);
        for ev in out.events {
            if let SignalEvent::RuleMuted {
                rate_per_hour,
                limit_per_hour,
                until_unix_ms,
                ..
            } = ev
            {
                reports[ri].mutes.push(Mute {
                    at_ms: t,
                    rate_per_hour,
                    limit_per_hour,
                    until_ms: i64::try_from(until_unix_ms).unwrap_or(i64::MAX),
                });
            }
        }
        if let Some(rep) = out.report {
            if !rep.ok && !firing[ri] {
                reports[ri].firings.push(Firing {
                    at_ms: t,
                    detail: rep.detail.clone(),
                });
            }
            firing[ri] = !rep.ok;
            drv.engine.handle_input(mono, Input::Probe(rep));
            drv.drain(mono);
        }
        if i % 1024 == 0 || i == total {
            progress(i, total);
        }
    }
    // Deadlines after the last sample fire up to --to when given, else up to the last sample.
    let last_sample = events.last().map_or(t0, |e| e.0);
    let end = drv.mono(if to_ms == i64::MAX {
        last_sample
    } else {
        to_ms.max(t0)
    });
    drv.advance(end);
    for (r, tr) in reports.iter_mut().zip(traces) {
        r.series = tr;
    }
    for (id, d) in std::mem::take(&mut drv.decisions) {
        if let Some(i) = drv.incidents.get_mut(&id) {
            i.decisions.push(d);
        }
    }
    for id in &drv.order {
        let Some(inc) = drv.incidents.get(id) else {
            continue;
        };
        let by = inc.trigger.split_whitespace().next().unwrap_or("");
        if let Some(r) = reports
            .iter_mut()
            .find(|r| r.rule == by && r.service == inc.service)
        {
            r.incidents.push(inc.clone());
        }
    }
    progress(total, total);
    Report {
        from_ms: t0,
        to_ms: events.last().map_or(to_ms, |e| e.0),
        rules: reports,
        notifications: drv.notifications,
    }
}
