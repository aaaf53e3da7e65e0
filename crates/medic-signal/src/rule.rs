//! Pure rule evaluation: observations in, a virtual-probe report (and breaker
//! events) out. Time is injected; nothing here reads a clock or does IO.
use std::collections::BTreeMap;
use std::time::Duration;

use medic_config::{Check, NoData, RuleConfig};
use medic_core::{ProbeFailure, ProbeReport};
use medic_detect::Detector;

use crate::breaker::{Breaker, BreakerEvent};
use crate::SignalEvent;

/// Most series one rule tracks; further series are ignored.
pub const MAX_SERIES: usize = 256;
/// A series absent for this many evaluations in a row is forgotten.
pub const SERIES_IDLE_EVALS: u32 = 20;

/// The current time, twice: monotonic for durations, wall clock for detectors and events.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Now {
    pub mono_ms: u64,
    pub unix_ms: u64,
}

impl Now {
    pub fn unix_secs(self) -> i64 {
        i64::try_from(self.unix_ms / 1000).unwrap_or(i64::MAX)
    }

    /// Wall-clock time of monotonic instant `mono_ms`.
    pub fn unix_of(self, mono_ms: u64) -> u64 {
        if mono_ms >= self.mono_ms {
            self.unix_ms.saturating_add(mono_ms - self.mono_ms)
        } else {
            self.unix_ms.saturating_sub(self.mono_ms - mono_ms)
        }
    }
}

/// One value of one series at this evaluation.
#[derive(Clone, Debug, PartialEq)]
pub struct Observation {
    /// Canonical series key, e.g. `metric{label="v"}`.
    pub series: String,
    pub value: f64,
}

struct SeriesState {
    detector: Option<Box<dyn Detector>>,
    breach_since: Option<u64>,
    absent: u32,
}

/// How one series looks after this evaluation.
struct Verdict {
    series: String,
    value: f64,
    score: f64,
    breached: bool,
    held: bool,
}

/// The result of one evaluation.
#[derive(Debug, Default, PartialEq)]
pub struct Outcome {
    /// The report to send (none when the rule is muted or has nothing to say).
    pub report: Option<ProbeReport>,
    pub events: Vec<SignalEvent>,
    /// The rule's value this evaluation, its worst series by the rule's
    /// [`RuleState::direction`] (largest, smallest, or the worst verdict's);
    /// also while muted. `None` without finite data. Evidence for root-cause
    /// ranking (issue 9), not a verdict.
    pub sample: Option<f64>,
}

/// Which way a rule's value goes bad, read from its check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Badness {
    /// `above:` only.
    Up,
    /// `below:` only.
    Down,
    /// Both bounds, or a detector (a change either way).
    Both,
}

/// State of one signal rule.
pub struct RuleState {
    cfg: RuleConfig,
    series: BTreeMap<String, SeriesState>,
    breaker: Breaker,
    /// Whether the last report sent was failing.
    firing: bool,
    overflow_warned: bool,
}

impl RuleState {
    pub fn new(cfg: RuleConfig) -> RuleState {
        let breaker = Breaker::new(cfg.breaker.clone());
        RuleState {
            cfg,
            series: BTreeMap::new(),
            breaker,
            firing: false,
            overflow_warned: false,
        }
    }

    pub fn config(&self) -> &RuleConfig {
        &self.cfg
    }

    pub fn muted(&self) -> bool {
        self.breaker.muted()
    }

    pub fn series_count(&self) -> usize {
        self.series.len()
    }

    /// Which way this rule's value goes bad.
    pub fn direction(&self) -> Badness {
        match &self.cfg.check {
            Check::Threshold {
                above: Some(_),
                below: None,
            } => Badness::Up,
            Check::Threshold {
                above: None,
                below: Some(_),
            } => Badness::Down,
            _ => Badness::Both,
        }
    }

    fn condition(&self) -> String {
        let mut s = match &self.cfg.check {
            Check::Threshold { above, below } => {
                let mut parts = Vec::new();
                if let Some(a) = above {
                    parts.push(format!("above {a}"));
                }
                if let Some(b) = below {
                    parts.push(format!("below {b}"));
                }
                parts.join(" or ")
            }
            Check::Detector { name, threshold } => format!("{name} score >= {threshold}"),
        };
        if self.cfg.for_ > Duration::ZERO {
            s.push_str(&format!(" for {}s", self.cfg.for_.as_secs_f64()));
        }
        s
    }

    fn judge(&mut self, now: Now, obs: &Observation) -> Option<Verdict> {
        if !self.series.contains_key(&obs.series) {
            if self.series.len() >= MAX_SERIES {
                if !self.overflow_warned {
                    self.overflow_warned = true;
                    tracing::warn!(
                        rule = %self.cfg.name,
                        limit = MAX_SERIES,
                        "signal rule has too many series; ignoring the rest"
                    );
                }
                return None;
            }
            let detector = match &self.cfg.check {
                Check::Detector { name, .. } => medic_detect::by_name(name),
                Check::Threshold { .. } => None,
            };
            self.series.insert(
                obs.series.clone(),
                SeriesState {
                    detector,
                    breach_since: None,
                    absent: 0,
                },
            );
        }
        let for_ms = u64::try_from(self.cfg.for_.as_millis()).unwrap_or(u64::MAX);
        let st = self.series.get_mut(&obs.series)?;
        st.absent = 0;
        let v = obs.value;
        let (score, breached) = match &self.cfg.check {
            Check::Threshold { above, below } => {
                let b = above.is_some_and(|a| v > a) || below.is_some_and(|b| v < b);
                (if b { 1.0 } else { 0.0 }, b)
            }
            Check::Detector { threshold, .. } => {
                let s = match st.detector.as_mut() {
                    Some(d) => d.update(now.unix_secs(), v),
                    None => 0.0,
                };
                let s = if s.is_finite() {
                    s.clamp(0.0, 1.0)
                } else {
                    0.0
                };
                (s, s >= *threshold)
            }
        };
        if breached {
            if st.breach_since.is_none() {
                st.breach_since = Some(now.mono_ms);
            }
        } else {
            st.breach_since = None;
        }
        let held = st
            .breach_since
            .is_some_and(|t| now.mono_ms.saturating_sub(t) >= for_ms);
        Some(Verdict {
            series: obs.series.clone(),
            value: v,
            score,
            breached,
            held,
        })
    }

    /// Evaluate the rule on this interval's observations.
    pub fn evaluate(&mut self, now: Now, observations: &[Observation]) -> Outcome {
        let mut out = Outcome::default();
        let (muted, ev) = self.breaker.poll(now.mono_ms);
        if let Some(BreakerEvent::Unmuted) = ev {
            tracing::info!(rule = %self.cfg.name, service = %self.cfg.service, "signal rule re-enabled after cooldown");
            out.events.push(SignalEvent::RuleUnmuted {
                rule: self.cfg.name.clone(),
                service: self.cfg.service.clone(),
            });
            self.firing = false;
        }
        // Detectors keep learning while muted so they are ready afterwards.
        for s in self.series.values_mut() {
            s.absent = s.absent.saturating_add(1);
        }
        let mut verdicts: Vec<Verdict> = observations
            .iter()
            .filter_map(|o| self.judge(now, o))
            .collect();
        self.series.retain(|_, s| s.absent < SERIES_IDLE_EVALS);
        let finite = verdicts.iter().map(|v| v.value).filter(|v| v.is_finite());
        out.sample = match self.direction() {
            Badness::Up => finite.reduce(f64::max),
            Badness::Down => finite.reduce(f64::min),
            Badness::Both => None,
        };
        if muted {
            if out.sample.is_none() {
                out.sample = worst(&mut verdicts).filter(|v| v.is_finite());
            }
            return out;
        }
        let (failing, detail) = if verdicts.is_empty() {
            match self.cfg.no_data {
                NoData::Skip => return out,
                NoData::Ok => (false, format!("{}: no data", self.cfg.name)),
                NoData::Fail => (true, format!("{}: no data", self.cfg.name)),
            }
        } else {
            let w = worst(&mut verdicts).filter(|v| v.is_finite());
            if out.sample.is_none() {
                out.sample = w;
            }
            let w = &verdicts[0];
            let state = if w.held {
                "breached"
            } else if w.breached {
                "pending"
            } else {
                "ok"
            };
            let detail = format!(
                "{}: {} value={} score={:.2} {} ({})",
                self.cfg.name,
                w.series,
                crate::expo::format_value(w.value),
                w.score,
                state,
                self.condition()
            );
            (w.held, detail)
        };
        if failing && !self.firing {
            if let Some(BreakerEvent::Muted {
                rate_per_hour,
                until_ms,
            }) = self.breaker.record_firing(now.mono_ms)
            {
                tracing::warn!(
                    rule = %self.cfg.name,
                    service = %self.cfg.service,
                    rate_per_hour,
                    cooldown_secs = self.breaker.cooldown().as_secs(),
                    "noisy signal rule muted"
                );
                out.events.push(SignalEvent::RuleMuted {
                    rule: self.cfg.name.clone(),
                    service: self.cfg.service.clone(),
                    rate_per_hour,
                    limit_per_hour: self.breaker.limit(),
                    until_unix_ms: now.unix_of(until_ms),
                });
                self.firing = false;
                return out;
            }
        }
        self.firing = failing;
        out.report = Some(ProbeReport {
            service: self.cfg.service.clone(),
            probe: self.cfg.name.clone(),
            ok: !failing,
            latency: Duration::ZERO,
            failure: failing.then_some(ProbeFailure::Other),
            detail,
        });
        out
    }
}

/// Sorts `verdicts` worst first (held breaches, then pending breaches, then
/// by score) and returns the worst one's value.
fn worst(verdicts: &mut [Verdict]) -> Option<f64> {
    verdicts.sort_by(|a, b| {
        (b.held, b.breached)
            .cmp(&(a.held, a.breached))
            .then(b.score.total_cmp(&a.score))
    });
    verdicts.first().map(|v| v.value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use medic_config::{BreakerConfig, Selector};

    fn rule(check: Check, for_secs: u64) -> RuleConfig {
        RuleConfig {
            name: "lat".into(),
            service: "web".into(),
            source: "prom".into(),
            selector: Selector::Query("q".into()),
            check,
            for_: Duration::from_secs(for_secs),
            no_data: NoData::Skip,
            breaker: BreakerConfig::default(),
            kind: None,
        }
    }

    fn at(s: u64) -> Now {
        Now {
            mono_ms: s * 1000,
            unix_ms: 1_700_000_000_000 + s * 1000,
        }
    }

    fn obs(v: f64) -> Vec<Observation> {
        vec![Observation {
            series: "m".into(),
            value: v,
        }]
    }

    fn ok_of(o: &Outcome) -> Option<bool> {
        o.report.as_ref().map(|r| r.ok)
    }

    #[test]
    fn threshold_with_for_duration() {
        let mut r = RuleState::new(rule(
            Check::Threshold {
                above: Some(0.5),
                below: None,
            },
            10,
        ));
        assert_eq!(ok_of(&r.evaluate(at(0), &obs(0.1))), Some(true));
        assert_eq!(ok_of(&r.evaluate(at(5), &obs(0.9))), Some(true));
        assert_eq!(ok_of(&r.evaluate(at(10), &obs(0.9))), Some(true));
        let o = r.evaluate(at(15), &obs(0.9));
        assert_eq!(ok_of(&o), Some(false));
        let rep = o.report.unwrap_or_else(|| unreachable!());
        assert_eq!(rep.probe, "lat");
        assert_eq!(rep.failure, Some(ProbeFailure::Other));
        assert!(rep.detail.contains("value=0.9"), "{}", rep.detail);
        assert!(rep.detail.contains("above 0.5 for 10s"), "{}", rep.detail);
        // A dip resets the clock.
        assert_eq!(ok_of(&r.evaluate(at(16), &obs(0.2))), Some(true));
        assert_eq!(ok_of(&r.evaluate(at(17), &obs(0.9))), Some(true));
    }

    #[test]
    fn worst_series_is_named_and_any_series_fails_the_rule() {
        let mut r = RuleState::new(rule(
            Check::Threshold {
                above: None,
                below: Some(1.0),
            },
            0,
        ));
        let o = r.evaluate(
            at(0),
            &[
                Observation {
                    series: "up{i=\"a\"}".into(),
                    value: 1.0,
                },
                Observation {
                    series: "up{i=\"b\"}".into(),
                    value: 0.0,
                },
            ],
        );
        let rep = o.report.unwrap_or_else(|| unreachable!());
        assert!(!rep.ok);
        assert!(rep.detail.contains("up{i=\"b\"}"), "{}", rep.detail);
    }

    #[test]
    fn detector_rule_scores_a_spike() {
        let mut r = RuleState::new(rule(
            Check::Detector {
                name: "zscore".into(),
                threshold: 0.9,
            },
            0,
        ));
        for i in 0..100 {
            let v = 100.0 + (i % 5) as f64;
            let o = r.evaluate(at(i), &obs(v));
            assert_eq!(ok_of(&o), Some(true), "sample {i}");
        }
        let o = r.evaluate(at(100), &obs(1000.0));
        assert_eq!(ok_of(&o), Some(false));
    }

    #[test]
    fn no_data_policies() {
        let mut c = rule(
            Check::Threshold {
                above: Some(1.0),
                below: None,
            },
            0,
        );
        let mut r = RuleState::new(c.clone());
        assert_eq!(r.evaluate(at(0), &[]), Outcome::default());
        c.no_data = NoData::Fail;
        let mut r = RuleState::new(c.clone());
        assert_eq!(ok_of(&r.evaluate(at(0), &[])), Some(false));
        c.no_data = NoData::Ok;
        let mut r = RuleState::new(c);
        assert_eq!(ok_of(&r.evaluate(at(0), &[])), Some(true));
    }

    #[test]
    fn the_sample_is_the_worst_series_by_the_checks_direction() {
        let two = |a: f64, b: f64| {
            vec![
                Observation {
                    series: "a".into(),
                    value: a,
                },
                Observation {
                    series: "b".into(),
                    value: b,
                },
            ]
        };
        let mut up = RuleState::new(rule(
            Check::Threshold {
                above: Some(100.0),
                below: None,
            },
            0,
        ));
        assert_eq!(up.direction(), Badness::Up);
        assert_eq!(up.evaluate(at(0), &two(3.0, 7.0)).sample, Some(7.0));
        let mut down = RuleState::new(rule(
            Check::Threshold {
                above: None,
                below: Some(0.5),
            },
            0,
        ));
        assert_eq!(down.direction(), Badness::Down);
        assert_eq!(down.evaluate(at(0), &two(3.0, 7.0)).sample, Some(3.0));
        // Both bounds: the worst verdict's value (the breached series).
        let mut both = RuleState::new(rule(
            Check::Threshold {
                above: Some(10.0),
                below: Some(1.0),
            },
            0,
        ));
        assert_eq!(both.direction(), Badness::Both);
        assert_eq!(both.evaluate(at(0), &two(0.5, 7.0)).sample, Some(0.5));
        assert_eq!(up.evaluate(at(1), &two(f64::NAN, f64::NAN)).sample, None);
    }

    #[test]
    fn flapping_rule_is_muted_then_reenabled() {
        let mut c = rule(
            Check::Threshold {
                above: Some(1.0),
                below: None,
            },
            0,
        );
        c.breaker.cooldown = Duration::from_secs(900);
        let mut r = RuleState::new(c);
        let mut muted_at = None;
        let mut events = Vec::new();
        for i in 0..200u64 {
            let v = if i % 2 == 0 { 5.0 } else { 0.0 };
            let o = r.evaluate(at(i * 10), &obs(v));
            if !o.events.is_empty() {
                events.extend(o.events);
                muted_at = Some(i);
                assert!(o.report.is_none());
                break;
            }
        }
        // 31st rising edge at i = 60.
        assert_eq!(muted_at, Some(60));
        match &events[0] {
            SignalEvent::RuleMuted {
                rule,
                rate_per_hour,
                limit_per_hour,
                until_unix_ms,
                ..
            } => {
                assert_eq!(rule, "lat");
                assert_eq!(*rate_per_hour, 31.0);
                assert_eq!(*limit_per_hour, 30.0);
                assert_eq!(*until_unix_ms, at(600).unix_ms + 900_000);
            }
            other => panic!("unexpected {other:?}"),
        }
        // Muted: no reports for the cooldown.
        for s in (610..1500).step_by(10) {
            let o = r.evaluate(at(s), &obs(5.0));
            assert!(o.report.is_none() && o.events.is_empty(), "t={s}");
        }
        let o = r.evaluate(at(1500), &obs(5.0));
        assert!(matches!(o.events[..], [SignalEvent::RuleUnmuted { .. }]));
        assert_eq!(ok_of(&o), Some(false));
    }

    #[test]
    fn series_are_bounded() {
        let mut r = RuleState::new(rule(
            Check::Threshold {
                above: Some(1.0),
                below: None,
            },
            0,
        ));
        let many: Vec<Observation> = (0..1000)
            .map(|i| Observation {
                series: format!("s{i}"),
                value: 0.0,
            })
            .collect();
        r.evaluate(at(0), &many);
        assert_eq!(r.series_count(), MAX_SERIES);
        for i in 1..=SERIES_IDLE_EVALS as u64 {
            r.evaluate(at(i), &[]);
        }
        assert_eq!(r.series_count(), 0);
    }
}
