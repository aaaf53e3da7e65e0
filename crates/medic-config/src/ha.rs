//! `ha:`: several medic instances, one leader elected on an etcd lease (issue 13).
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use serde_saphyr::Spanned;

use crate::raw::Dur;
use crate::Validator;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHa {
    pub etcd: Spanned<Vec<Spanned<String>>>,
    pub election: Option<Spanned<String>>,
    pub prefix: Option<Spanned<String>>,
    pub member: Option<Spanned<String>>,
    pub lease_ttl: Option<Spanned<Dur>>,
    pub drift_margin: Option<Spanned<Dur>>,
    pub fence_file: Option<String>,
}

/// Leader election and fencing (see docs/ha.md).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HaConfig {
    /// etcd client endpoints (`http://host:port`).
    pub etcd: Vec<String>,
    /// The election's name (the key prefix campaigned on).
    pub election: String,
    /// Where members register (`{prefix}/members/{member}`).
    pub prefix: String,
    /// This instance's name in the cluster; `None`: a generated id.
    pub member: Option<String>,
    /// The etcd lease's TTL; renewed every `lease_ttl / 3`.
    pub lease_ttl: Duration,
    /// How much sooner than `lease_ttl` after its last successful renew a
    /// leader stops starting actions (clock drift and rate between hosts).
    pub drift_margin: Duration,
    /// The process executor's token file (highest fencing token seen);
    /// relative paths are relative to the database's directory.
    pub fence_file: PathBuf,
}

impl HaConfig {
    /// How often the lease is renewed: a third of its TTL.
    pub fn renew_every(&self) -> Duration {
        self.lease_ttl / 3
    }
}

impl Validator {
    pub(crate) fn ha(&mut self, raw: RawHa) -> HaConfig {
        if raw.etcd.value.is_empty() {
            self.at(raw.etcd.referenced, "ha.etcd must not be empty");
        }
        for e in &raw.etcd.value {
            self.url(e);
        }
        let name = |s: &Option<Spanned<String>>, v: &mut Validator, what: &str| {
            if let Some(s) = s {
                if s.value.trim().is_empty() || s.value.contains(char::is_whitespace) {
                    v.at(
                        s.referenced,
                        format!("ha.{what} must be a non-empty name without spaces"),
                    );
                }
            }
        };
        name(&raw.election, self, "election");
        name(&raw.prefix, self, "prefix");
        name(&raw.member, self, "member");
        let lease_ttl = match raw.lease_ttl {
            Some(t) if t.value.0 < Duration::from_secs(1) => {
                self.at(t.referenced, "ha.lease_ttl must be at least 1s");
                Duration::from_secs(1)
            }
            Some(t) => t.value.0,
            None => Duration::from_secs(5),
        };
        let drift_margin = match raw.drift_margin {
            Some(m) if m.value.0 >= lease_ttl / 3 => {
                self.at(
                    m.referenced,
                    format!(
                        "ha.drift_margin must be less than a third of ha.lease_ttl ({})",
                        humantime::format_duration(lease_ttl / 3)
                    ),
                );
                lease_ttl / 10
            }
            Some(m) => m.value.0,
            None => lease_ttl / 10,
        };
        HaConfig {
            etcd: raw.etcd.value.into_iter().map(|e| e.value).collect(),
            election: raw
                .election
                .map_or_else(|| "medic/leader".into(), |s| s.value),
            prefix: raw.prefix.map_or_else(|| "medic".into(), |s| s.value),
            member: raw.member.map(|s| s.value),
            lease_ttl,
            drift_margin,
            fence_file: PathBuf::from(raw.fence_file.unwrap_or_else(|| "fence.token".into())),
        }
    }
}
