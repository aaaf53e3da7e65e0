//! Turning what the engine wants said into outbox rows: routing by severity
//! and service, one row per matching route, and the escalation chain.
use medic_config::NotifyConfig;
use medic_core::{Notification, Severity};
use medic_store::outbox::NewMessage;
use sha2::{Digest, Sha256};

/// Whether a notification starts the escalation chain: a critical notice
/// about an incident (escalated to a human) or an action waiting for an
/// approval.
pub fn starts_chain(n: &Notification) -> bool {
    n.incident.is_some()
        && (n.severity == Severity::Critical || n.title.ends_with(": pending-approval"))
}

fn key(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p.as_bytes());
        h.update([0u8]);
    }
    hex::encode(&h.finalize()[..16])
}

/// A fresh, time-ordered message id (UUID v7).
pub fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// The rows for one notification at `now_ms` (unix ms): one per matching
/// route (failover inside a route), plus one `escalate` row per chain step
/// due at `now + after` when [`starts_chain`].
pub fn messages(cfg: &NotifyConfig, n: &Notification, now_ms: i64) -> Vec<NewMessage> {
    let incident = n.incident.as_ref().map(|i| i.0.clone());
    let inc = incident.as_deref().unwrap_or("");
    let mut out = Vec::new();
    for channels in cfg.route(n.severity, &n.service) {
        let lane = channels.join(",");
        out.push(NewMessage {
            msg_id: new_id(),
            dedup_key: key(&["notify", &lane, inc, &n.service, &n.title, &n.message]),
            due_ms: 0,
            severity: n.severity.as_str().to_string(),
            service: n.service.clone(),
            incident: incident.clone(),
            event: "notify".into(),
            title: n.title.clone(),
            message: n.message.clone(),
            channels: Some(channels),
        });
    }
    if starts_chain(n) {
        for (idx, step) in cfg.escalation.iter().enumerate() {
            let after = i64::try_from(step.after.as_millis()).unwrap_or(i64::MAX);
            let level = idx + 1;
            out.push(NewMessage {
                msg_id: new_id(),
                // One pending chain per incident and step.
                dedup_key: key(&["escalate", inc, &level.to_string()]),
                due_ms: now_ms.saturating_add(after),
                severity: Severity::Critical.as_str().to_string(),
                service: n.service.clone(),
                incident: incident.clone(),
                event: "escalate".into(),
                title: format!(
                    "{} (not acknowledged after {}, escalation level {level})",
                    n.title,
                    humantime_short(step.after)
                ),
                message: n.message.clone(),
                channels: Some(step.channels.clone()),
            });
        }
    }
    out
}

/// An incident event without an engine notification.
#[derive(Debug, Clone, Copy)]
pub struct Event<'a> {
    /// `acknowledge`, `resolve` or `test`.
    pub event: &'a str,
    pub severity: Severity,
    pub service: &'a str,
    pub incident: Option<&'a str>,
    pub title: &'a str,
    pub message: &'a str,
}

/// Rows for an incident event without an engine notification
/// (`acknowledge`, `resolve`, `test`): one per route matching `severity`
/// and `service`, or one on exactly `only` when given.
pub fn event_messages(cfg: &NotifyConfig, e: &Event<'_>, only: Option<&str>) -> Vec<NewMessage> {
    let Event {
        event,
        severity,
        service,
        incident,
        title,
        message,
    } = *e;
    let lanes = match only {
        Some(c) => vec![vec![c.to_string()]],
        None => cfg.route(severity, service),
    };
    lanes
        .into_iter()
        .map(|channels| {
            let id = new_id();
            NewMessage {
                dedup_key: key(&[event, &channels.join(","), incident.unwrap_or(&id), title]),
                msg_id: id,
                due_ms: 0,
                severity: severity.as_str().to_string(),
                service: service.to_string(),
                incident: incident.map(str::to_string),
                event: event.to_string(),
                title: title.to_string(),
                message: message.to_string(),
                channels: Some(channels),
            }
        })
        .collect()
}

fn humantime_short(d: std::time::Duration) -> String {
    let s = d.as_secs();
    if s > 0 && s.is_multiple_of(3600) {
        format!("{}h", s / 3600)
    } else if s > 0 && s.is_multiple_of(60) {
        format!("{}m", s / 60)
    } else {
        format!("{}s", s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use medic_core::IncidentId;

    fn n(severity: Severity, incident: bool, title: &str) -> Notification {
        Notification {
            severity,
            service: "web".into(),
            incident: incident.then(|| IncidentId("i".into())),
            title: title.into(),
            message: String::new(),
        }
    }

    #[test]
    fn chains_start_for_escalations_and_pending_approvals_only() {
        assert!(starts_chain(&n(
            Severity::Critical,
            true,
            "web: escalated to a human"
        )));
        assert!(starts_chain(&n(
            Severity::Warning,
            true,
            "web: pending-approval"
        )));
        assert!(!starts_chain(&n(
            Severity::Warning,
            true,
            "web: heal failed, trying again"
        )));
        assert!(!starts_chain(&n(
            Severity::Critical,
            false,
            "3 services affected"
        )));
    }
}
