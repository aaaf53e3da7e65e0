//! High availability (issue 13): what this instance is in its cluster, for
//! `/readyz` and the `medic_ha_*` metrics. Set by the daemon; `None` (no
//! `ha:` section) leaves `/readyz` and `/metrics` as they were.
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::gauge::ConstGauge;
use serde::Serialize;

/// Why an instance does not act; a bounded set (metric label, `reason_code`).
pub const REASONS: [&str; 4] = [
    "follower",
    "lost_lease",
    "etcd_unreachable",
    "store_unreachable",
];

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct HaView {
    pub member: String,
    /// Leader with a valid lease and a reachable store: runs actions.
    pub acting: bool,
    /// One of [`REASONS`] when not acting.
    pub reason: Option<&'static str>,
    /// This instance's fencing token while it leads.
    pub token: Option<u64>,
    /// The leader's member name as last read from etcd.
    pub leader: Option<String>,
    /// Elections this process won.
    pub terms: u64,
    pub last_renew_unix_ms: Option<u64>,
    /// Events in the local journal, waiting for the shared store (fail safe).
    pub journal_events: u64,
    /// Events the full local journal dropped since start.
    pub journal_dropped: u64,
    /// Local-journal events replayed into the shared audit chain since start.
    pub replayed: u64,
}

#[derive(Clone, Debug, Default)]
pub struct HaCell(Arc<Mutex<Option<HaView>>>);

impl HaCell {
    pub fn set(&self, v: HaView) {
        match self.0.lock() {
            Ok(mut g) => *g = Some(v),
            Err(p) => *p.into_inner() = Some(v),
        }
    }

    pub fn get(&self) -> Option<HaView> {
        match self.0.lock() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

fn g(enc: &mut DescriptorEncoder, name: &str, help: &str, v: i64) -> Result<(), std::fmt::Error> {
    let c = ConstGauge::new(v);
    let m = enc.encode_descriptor(name, help, None, c.metric_type())?;
    c.encode(m)
}

impl Collector for HaCell {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Some(v) = self.get() else {
            return Ok(());
        };
        g(
            &mut enc,
            "medic_ha_is_leader",
            "1 while this instance leads and may act (valid lease, store reachable)",
            i64::from(v.acting),
        )?;
        g(
            &mut enc,
            "medic_ha_token",
            "This instance's fencing token (the election key's revision) while it leads, else 0",
            v.token.and_then(|t| i64::try_from(t).ok()).unwrap_or(0),
        )?;
        g(
            &mut enc,
            "medic_ha_terms",
            "Elections this process has won",
            i64::try_from(v.terms).unwrap_or(i64::MAX),
        )?;
        let age = v.last_renew_unix_ms.map_or(-1, |t| {
            i64::try_from(now_ms().saturating_sub(t)).unwrap_or(i64::MAX)
        });
        g(
            &mut enc,
            "medic_ha_last_renew_age_ms",
            "Milliseconds since this instance's lease was last renewed (-1: never)",
            age,
        )?;
        g(
            &mut enc,
            "medic_ha_local_journal_events",
            "Events recorded locally while the shared store or etcd is unreachable, not yet replayed",
            i64::try_from(v.journal_events).unwrap_or(i64::MAX),
        )?;
        g(
            &mut enc,
            "medic_ha_local_journal_dropped",
            "Events the full local journal dropped since start (oldest non-critical first)",
            i64::try_from(v.journal_dropped).unwrap_or(i64::MAX),
        )?;
        g(
            &mut enc,
            "medic_ha_replayed",
            "Local-journal events replayed into the shared audit chain since start",
            i64::try_from(v.replayed).unwrap_or(i64::MAX),
        )?;
        let c = ConstGauge::new(0i64);
        let mut fam = enc.encode_descriptor(
            "medic_ha_not_acting",
            "1 for the reason this instance does not act (follower, lost_lease, etcd_unreachable, store_unreachable)",
            None,
            c.metric_type(),
        )?;
        for r in REASONS {
            let labels = [("reason", r)];
            let m = fam.encode_family(&labels)?;
            ConstGauge::new(i64::from(v.reason == Some(r))).encode(m)?;
        }
        Ok(())
    }
}
