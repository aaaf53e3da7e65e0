//! The `governance:` section: limits, gates, approvals, business hours,
//! freeze windows and per-service facts for the risk score.
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use medic_core::{
    ActionClass, ActionGovernance, FreezeWindow, GovernanceConfig, ServiceGovernance,
};
use serde::Deserialize;
use serde_saphyr::Spanned;

use crate::raw::Dur;
use crate::Validator;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawGovernance {
    pub limits: Option<RawLimits>,
    pub gates: Option<RawGates>,
    pub approvals: Option<RawApprovals>,
    pub business_hours: Option<RawBusinessHours>,
    pub canary_bake: Option<Dur>,
    /// Confidence bands (issue 9).
    pub autonomy: Option<Spanned<RawAutonomy>>,
    /// Locks and conflicts (issue 10).
    pub locks: Option<RawLocks>,
    /// Executor circuit breakers (issue 10).
    pub breaker: Option<Spanned<RawBreaker>>,
    #[serde(default)]
    pub freeze_windows: Vec<RawFreeze>,
    #[serde(default)]
    pub services: BTreeMap<String, Spanned<RawServiceGov>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLocks {
    pub ttl: Option<Spanned<Dur>>,
    pub max_wait: Option<Spanned<Dur>>,
    pub max_waiters: Option<Spanned<u32>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBreaker {
    pub failures: Option<u32>,
    pub cooldown: Option<crate::raw::Dur>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAutonomy {
    pub act_above: Option<u8>,
    pub armed_from: Option<u8>,
    pub approval_from: Option<u8>,
    pub armed_verify_factor: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLimits {
    pub max_concurrent_actions: Option<u32>,
    pub max_actions_per_hour: Option<u32>,
    pub feature_disables_per_hour: Option<u32>,
    pub fallbacks_per_service_per_hour: Option<u32>,
    pub max_consecutive_failures: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawGates {
    pub min_error_budget_ratio: Option<Spanned<f64>>,
    pub max_blast_radius_ratio: Option<Spanned<f64>>,
    pub max_failed_actions_per_hour: Option<u32>,
    pub min_headroom_ratio: Option<Spanned<f64>>,
    pub max_incidents_per_hour: Option<u32>,
    pub mass_incident_services: Option<u32>,
    pub human_score: Option<Spanned<f64>>,
    pub canary_score: Option<Spanned<f64>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawApprovals {
    pub expiry: Option<Dur>,
    pub two_person_high: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBusinessHours {
    pub days: Option<Spanned<Vec<String>>>,
    pub hours: Option<Spanned<String>>,
    #[serde(default)]
    pub peaks: Vec<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFreeze {
    pub name: Spanned<String>,
    pub schedule: Spanned<String>,
    pub duration: Dur,
    pub timezone: Option<Spanned<String>>,
    pub services: Option<Spanned<Vec<String>>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawServiceGov {
    pub criticality: Option<Spanned<f64>>,
    pub instances: Option<u32>,
    #[serde(default)]
    pub actions: BTreeMap<String, Spanned<RawActionGov>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawActionGov {
    pub class: Option<Spanned<String>>,
    pub change_size: Option<Spanned<f64>>,
    pub removes_capacity: Option<bool>,
    pub canary: Option<bool>,
}

/// A cron-scheduled freeze window, expanded to concrete intervals by
/// [`FreezeSpec::windows`].
#[derive(Debug, Clone, PartialEq)]
pub struct FreezeSpec {
    pub name: String,
    pub schedule: String,
    pub duration: Duration,
    pub timezone: String,
    pub services: Option<Vec<String>>,
    cron: croner::Cron,
}

impl FreezeSpec {
    /// Concrete windows overlapping `[now, now + horizon)` (unix ms).
    pub fn windows(&self, now_unix_ms: i64, horizon: Duration) -> Vec<FreezeWindow> {
        let Ok(tz) = jiff::tz::TimeZone::get(&self.timezone) else {
            return Vec::new();
        };
        let dur_ms = i64::try_from(self.duration.as_millis()).unwrap_or(i64::MAX);
        let horizon_ms = i64::try_from(horizon.as_millis()).unwrap_or(i64::MAX);
        // Start early enough to catch a window that began before now.
        let Ok(start) = jiff::Timestamp::from_millisecond(now_unix_ms.saturating_sub(dur_ms))
        else {
            return Vec::new();
        };
        let end_ms = now_unix_ms.saturating_add(horizon_ms);
        let mut out = Vec::new();
        let mut cursor = start.to_zoned(tz);
        for _ in 0..1000 {
            let Ok(next) = self.cron.find_next_occurrence(&cursor, false) else {
                break;
            };
            let s = next.timestamp().as_millisecond();
            if s >= end_ms {
                break;
            }
            if s.saturating_add(dur_ms) > now_unix_ms {
                out.push(FreezeWindow {
                    name: self.name.clone(),
                    start_unix_ms: s,
                    end_unix_ms: s.saturating_add(dur_ms),
                    services: self.services.clone(),
                });
            }
            cursor = next;
        }
        out
    }
}

const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

fn minutes(s: &str) -> Option<u16> {
    let (h, m) = s.trim().split_once(':')?;
    let (h, m): (u16, u16) = (h.parse().ok()?, m.parse().ok()?);
    (h <= 24 && m < 60 && h * 60 + m <= 24 * 60).then_some(h * 60 + m)
}

fn range(s: &str) -> Option<(u16, u16)> {
    let (a, b) = s.split_once('-')?;
    let (a, b) = (minutes(a)?, minutes(b)?);
    (a < b).then_some((a, b))
}

fn class(s: &str) -> Option<ActionClass> {
    medic_core::CLASS_TABLE
        .iter()
        .find(|row| row.name == s)
        .map(|row| row.class)
}

impl Validator {
    pub(crate) fn ratio(&mut self, v: &Option<Spanned<f64>>, name: &str, default: f64) -> f64 {
        match v {
            Some(x) if (0.0..=1.0).contains(&x.value) => x.value,
            Some(x) => {
                self.at(
                    x.referenced,
                    format!("{name} must be between 0 and 1 (got {})", x.value),
                );
                default
            }
            None => default,
        }
    }

    /// Cron windows (freeze windows, drill windows): each validated, with
    /// the services they name.
    pub(crate) fn cron_windows(
        &mut self,
        raw: Vec<RawFreeze>,
        services: &BTreeMap<String, BTreeSet<String>>,
    ) -> Vec<FreezeSpec> {
        let mut freezes = Vec::new();
        for f in raw {
            let tz = f
                .timezone
                .as_ref()
                .map_or("UTC".to_string(), |t| t.value.clone());
            if let Some(t) = &f.timezone {
                if jiff::tz::TimeZone::get(&t.value).is_err() {
                    self.at(t.referenced, format!("unknown timezone `{}`", t.value));
                }
            }
            if let Some(s) = &f.services {
                for name in &s.value {
                    if !services.contains_key(name) {
                        self.at(
                            s.referenced,
                            format!("freeze window names undefined service `{name}`"),
                        );
                    }
                }
            }
            let cron = croner::parser::CronParser::builder()
                .seconds(croner::parser::Seconds::Disallowed)
                .build()
                .parse(&f.schedule.value);
            match cron {
                Ok(cron) => freezes.push(FreezeSpec {
                    name: f.name.value,
                    schedule: f.schedule.value,
                    duration: f.duration.0,
                    timezone: tz,
                    services: f.services.map(|s| s.value),
                    cron,
                }),
                Err(e) => self.at(
                    f.schedule.referenced,
                    format!("invalid cron schedule `{}`: {e}", f.schedule.value),
                ),
            }
        }
        freezes
    }

    /// Validate the section; `services` maps each service to its action names.
    pub(crate) fn governance(
        &mut self,
        raw: Option<RawGovernance>,
        services: &BTreeMap<String, BTreeSet<String>>,
    ) -> (GovernanceConfig, Vec<FreezeSpec>) {
        let mut g = GovernanceConfig::default();
        let Some(raw) = raw else {
            return (g, Vec::new());
        };
        if let Some(l) = raw.limits {
            let d = &mut g.limits;
            d.max_concurrent = l.max_concurrent_actions.unwrap_or(d.max_concurrent);
            d.max_actions_per_hour = l.max_actions_per_hour.unwrap_or(d.max_actions_per_hour);
            d.feature_disables_per_hour = l
                .feature_disables_per_hour
                .unwrap_or(d.feature_disables_per_hour);
            d.fallbacks_per_service_per_hour = l
                .fallbacks_per_service_per_hour
                .unwrap_or(d.fallbacks_per_service_per_hour);
            d.max_consecutive_failures = l
                .max_consecutive_failures
                .unwrap_or(d.max_consecutive_failures)
                .max(1);
        }
        if let Some(gt) = raw.gates {
            let d = g.gates.clone();
            g.gates.min_error_budget = self.ratio(
                &gt.min_error_budget_ratio,
                "min_error_budget_ratio",
                d.min_error_budget,
            );
            g.gates.max_blast_radius = self.ratio(
                &gt.max_blast_radius_ratio,
                "max_blast_radius_ratio",
                d.max_blast_radius,
            );
            g.gates.min_headroom =
                self.ratio(&gt.min_headroom_ratio, "min_headroom_ratio", d.min_headroom);
            g.gates.human_score = self.ratio(&gt.human_score, "human_score", d.human_score);
            g.gates.canary_score = self.ratio(&gt.canary_score, "canary_score", d.canary_score);
            g.gates.max_failed_actions_per_hour = gt
                .max_failed_actions_per_hour
                .unwrap_or(d.max_failed_actions_per_hour);
            g.gates.max_incidents_per_hour = gt
                .max_incidents_per_hour
                .unwrap_or(d.max_incidents_per_hour);
            g.gates.mass_incident_services = gt
                .mass_incident_services
                .unwrap_or(d.mass_incident_services);
        }
        if let Some(a) = raw.approvals {
            g.approvals.expiry = a.expiry.map_or(g.approvals.expiry, |d| d.0);
            g.approvals.two_person_high = a.two_person_high.unwrap_or(g.approvals.two_person_high);
        }
        if let Some(b) = raw.business_hours {
            if let Some(days) = &b.days {
                let mut set = [false; 7];
                for d in &days.value {
                    match DAYS.iter().position(|x| x.eq_ignore_ascii_case(d.trim())) {
                        Some(i) => set[i] = true,
                        None => self.at(
                            days.referenced,
                            format!("unknown day `{d}` (expected mon..sun)"),
                        ),
                    }
                }
                g.timing.business_days = set;
            }
            if let Some(h) = &b.hours {
                match range(&h.value) {
                    Some(r) => g.timing.business_hours = r,
                    None => self.at(
                        h.referenced,
                        format!("invalid hours `{}` (expected HH:MM-HH:MM)", h.value),
                    ),
                }
            }
            if !b.peaks.is_empty() {
                g.timing.peaks.clear();
                for p in &b.peaks {
                    match range(&p.value) {
                        Some(r) => g.timing.peaks.push(r),
                        None => self.at(
                            p.referenced,
                            format!("invalid peak `{}` (expected HH:MM-HH:MM)", p.value),
                        ),
                    }
                }
            }
        }
        if let Some(c) = raw.canary_bake {
            g.canary_bake = c.0;
        }
        if let Some(a) = raw.autonomy {
            let d = &mut g.autonomy;
            d.act = a.value.act_above.unwrap_or(d.act);
            d.armed = a.value.armed_from.unwrap_or(d.armed);
            d.approve = a.value.approval_from.unwrap_or(d.approve);
            d.armed_verify_factor = a.value.armed_verify_factor.unwrap_or(d.armed_verify_factor);
            if !(d.approve <= d.armed && d.armed <= d.act && d.act <= 100) {
                self.at(
                    a.referenced,
                    format!(
                        "autonomy bands must satisfy approval_from <= armed_from <= act_above <= 100 (got {}, {}, {})",
                        d.approve, d.armed, d.act
                    ),
                );
            }
            if d.armed_verify_factor == 0 {
                self.at(
                    a.referenced,
                    "autonomy.armed_verify_factor must be at least 1",
                );
            }
        }
        if let Some(l) = raw.locks {
            let d = &mut g.locks;
            if let Some(t) = l.ttl {
                if t.value.0 < Duration::from_secs(1) {
                    self.at(t.referenced, "locks.ttl must be at least 1s");
                }
                d.ttl = t.value.0;
            }
            if let Some(w) = l.max_wait {
                d.max_wait = w.value.0;
            }
            if let Some(n) = l.max_waiters {
                if !(1..=4096).contains(&n.value) {
                    self.at(n.referenced, "locks.max_waiters must be between 1 and 4096");
                }
                d.max_waiters = n.value as usize;
            }
        }
        if let Some(b) = raw.breaker {
            let d = &mut g.breaker;
            d.failures = b.value.failures.unwrap_or(d.failures);
            d.cooldown = b.value.cooldown.map_or(d.cooldown, |c| c.0);
            if d.failures == 0 || d.cooldown.is_zero() {
                self.at(
                    b.referenced,
                    "breaker.failures and breaker.cooldown must be above zero",
                );
            }
        }
        let freezes = self.cron_windows(raw.freeze_windows, services);
        for (name, sg) in raw.services {
            let Some(actions) = services.get(&name) else {
                self.at(
                    sg.referenced,
                    format!("governance names undefined service `{name}`"),
                );
                continue;
            };
            let sgv = sg.value;
            let mut out = ServiceGovernance {
                criticality: self.ratio(&sgv.criticality, "criticality", 0.5),
                instances: sgv.instances.unwrap_or(1).max(1),
                actions: BTreeMap::new(),
            };
            for (aname, ag) in sgv.actions {
                if !actions.contains(&aname) {
                    self.at(
                        ag.referenced,
                        format!("governance names undefined action `{aname}` of service {name}"),
                    );
                    continue;
                }
                let agv = ag.value;
                // No class: the core takes the one implied by the action's
                // kind (a restart is a restart), never `other`.
                let cls = agv.class.as_ref().map(|c| {
                    class(&c.value).unwrap_or_else(|| {
                        self.at(c.referenced, format!("unknown action class `{}`", c.value));
                        ActionClass::Other
                    })
                });
                let change = agv
                    .change_size
                    .as_ref()
                    .map(|_| self.ratio(&agv.change_size, "change_size", 0.5));
                out.actions.insert(
                    aname,
                    ActionGovernance {
                        class: cls,
                        change_size: change,
                        removes_capacity: agv.removes_capacity,
                        canary: agv.canary.unwrap_or(true),
                    },
                );
            }
            g.services.insert(name, out);
        }
        (g, freezes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_parse() {
        assert_eq!(range("09:00-18:00"), Some((540, 1080)));
        assert_eq!(range("18:00-09:00"), None);
        assert_eq!(range("9-18"), None);
        assert_eq!(minutes("24:00"), Some(1440));
        assert_eq!(minutes("24:30"), None);
    }
}
