//! `drills:`: chaos drills (issue 14). A drill injects a declared fault into
//! a service through one of the service's own actions (the fault action the
//! operator configures: an exec or http action such as the fixture's
//! `/fault/crash`, `docker kill`, `kill -STOP`) and expects medic to heal it
//! within `timeout`. Drills run only inside a configured window.
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde::Deserialize;
use serde_saphyr::Spanned;

use crate::governance::{FreezeSpec, RawFreeze};
use crate::raw::Dur;
use crate::Validator;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDrills {
    /// Cron windows (like freeze windows) in which drills may run.
    #[serde(default)]
    pub windows: Vec<RawFreeze>,
    /// While inside a window, start the next scheduled drill this often.
    pub every: Option<Dur>,
    /// medic must heal a drill's fault within this long.
    pub timeout: Option<Dur>,
    pub list: BTreeMap<String, Spanned<RawDrill>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDrill {
    pub service: Spanned<String>,
    /// The fault kind, for the report (`kill`, `hang`, `error`, ...).
    pub fault: Spanned<String>,
    /// The action of `service` that injects the fault.
    pub inject: Spanned<String>,
}

/// The validated `drills:` section.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct DrillsConfig {
    /// Windows in which drills may run (none: drills are always refused).
    pub windows: Vec<FreezeSpec>,
    /// `None`: on demand only.
    pub every: Option<Duration>,
    pub timeout: Duration,
    pub drills: Vec<DrillSpec>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DrillSpec {
    pub name: String,
    pub service: String,
    pub fault: String,
    pub inject: String,
}

/// Default `drills.timeout`.
pub const DEFAULT_DRILL_TIMEOUT: Duration = Duration::from_secs(120);

impl DrillsConfig {
    /// True when `now_unix_ms` is inside one of the windows.
    pub fn in_window(&self, now_unix_ms: i64) -> bool {
        self.windows.iter().any(|w| {
            w.windows(now_unix_ms, Duration::ZERO)
                .iter()
                .any(|x| x.start_unix_ms <= now_unix_ms && now_unix_ms < x.end_unix_ms)
        })
    }

    pub fn get(&self, name: &str) -> Option<&DrillSpec> {
        self.drills.iter().find(|d| d.name == name)
    }
}

impl Validator {
    /// Validate `drills:`; `actions` maps each service to its action names.
    pub(crate) fn drills(
        &mut self,
        raw: Option<RawDrills>,
        actions: &BTreeMap<String, BTreeSet<String>>,
    ) -> DrillsConfig {
        let Some(raw) = raw else {
            return DrillsConfig {
                timeout: DEFAULT_DRILL_TIMEOUT,
                ..DrillsConfig::default()
            };
        };
        let windows = self.cron_windows(raw.windows, actions);
        let mut drills = Vec::new();
        for (name, d) in raw.list {
            let d = d.value;
            match actions.get(&d.service.value) {
                None => self.at(
                    d.service.referenced,
                    format!(
                        "drill `{name}` names undefined service `{}`",
                        d.service.value
                    ),
                ),
                Some(a) if !a.contains(&d.inject.value) => self.at(
                    d.inject.referenced,
                    format!(
                        "drill `{name}`: service `{}` has no action `{}` to inject the fault",
                        d.service.value, d.inject.value
                    ),
                ),
                Some(_) => {}
            }
            if d.fault.value.trim().is_empty() {
                self.at(d.fault.referenced, format!("drill `{name}`: empty fault"));
            }
            drills.push(DrillSpec {
                name,
                service: d.service.value,
                fault: d.fault.value,
                inject: d.inject.value,
            });
        }
        DrillsConfig {
            windows,
            every: raw.every.map(|d| d.0),
            timeout: raw.timeout.map_or(DEFAULT_DRILL_TIMEOUT, |d| d.0),
            drills,
        }
    }
}
