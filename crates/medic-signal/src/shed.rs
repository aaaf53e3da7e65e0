//! Self-protection of the Alertmanager receiver under a flood (issue 12):
//! alerts are admitted by priority. CRITICAL and HIGH alerts always go to
//! the engine (the handler waits for room in the bounded queue:
//! backpressure, never an unbounded buffer); lower ones are dropped, and
//! counted, whenever the engine's queue is more than half full, so a flood
//! of low-priority alerts cannot crowd out probes, critical alerts or
//! operator commands.

use std::collections::BTreeMap;

/// Most webhook requests handled at once; further requests wait before
/// their body is read, so at most this many bodies are in memory
/// (`MAX_CONCURRENT_WEBHOOKS × MAX_BODY`).
pub const MAX_CONCURRENT_WEBHOOKS: usize = 16;

/// An alert's priority, from its `severity` (or `priority`) label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Priority {
    Low,
    High,
    Critical,
}

impl Priority {
    /// `critical`, `page`, `p1`, `emergency` → Critical; `high`, `error`,
    /// `major`, `p2` → High; anything else (or none) → Low. Case-insensitive.
    pub fn of(labels: &BTreeMap<String, String>) -> Priority {
        let v = labels
            .get("severity")
            .or_else(|| labels.get("priority"))
            .map(|s| s.trim().to_ascii_lowercase())
            .unwrap_or_default();
        match v.as_str() {
            "critical" | "page" | "p1" | "emergency" => Priority::Critical,
            "high" | "error" | "major" | "p2" => Priority::High,
            _ => Priority::Low,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Priority::Low => "low",
            Priority::High => "high",
            Priority::Critical => "critical",
        }
    }
}

/// Whether an alert of `p` is admitted while the queue has `free` of `max`
/// slots: Critical and High always; Low only while at least half is free.
pub fn admit(p: Priority, free: usize, max: usize) -> bool {
    p >= Priority::High || free.saturating_mul(2) >= max
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn priorities_and_admission() {
        let l = |v: &str| BTreeMap::from([("severity".to_string(), v.to_string())]);
        assert_eq!(Priority::of(&l("CRITICAL")), Priority::Critical);
        assert_eq!(Priority::of(&l("high")), Priority::High);
        assert_eq!(Priority::of(&l("warning")), Priority::Low);
        assert_eq!(Priority::of(&BTreeMap::new()), Priority::Low);
        assert!(admit(Priority::Critical, 0, 100));
        assert!(admit(Priority::High, 0, 100));
        assert!(admit(Priority::Low, 50, 100));
        assert!(!admit(Priority::Low, 49, 100));
    }
}
