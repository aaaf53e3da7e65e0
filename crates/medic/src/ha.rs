//! The daemon's side of high availability (issue 13, docs/ha.md): the
//! election loop's state, the gate before every shared write and action, the
//! process executor's fence, and what `/readyz` and `/metrics` say.
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Instant;

use medic_api::ha::{HaCell, HaView};
use medic_config::HaConfig;
use medic_ha::{HaState, Hold, Verdict};
use tokio::sync::watch;

/// The deliberate-bug switch of the HA tests: skip every fence check (the
/// store's token compare-and-set, the process executor's token file, the
/// election check of the distributed locks). Never set it in production.
pub const UNSAFE_NO_FENCE: &str = "MEDIC_HA_UNSAFE_NO_FENCE";

/// Test hook: `MEDIC_HA_STOP_AT=before_execute` makes medic stop itself
/// (SIGSTOP) once, after the gate let an action through and before its fence
/// check and executor call: the pause a stale leader suffers.
pub const STOP_AT: &str = "MEDIC_HA_STOP_AT";

pub fn stop_point(point: &str) {
    static ARMED: OnceLock<Option<String>> = OnceLock::new();
    static DONE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    let armed = ARMED.get_or_init(|| std::env::var(STOP_AT).ok().filter(|v| !v.is_empty()));
    if armed.as_deref() == Some(point) && !DONE.swap(true, std::sync::atomic::Ordering::SeqCst) {
        eprintln!(
            "{STOP_AT}={point}: stopping medic (pid {})",
            std::process::id()
        );
        let _ = nix::sys::signal::raise(nix::sys::signal::Signal::SIGSTOP);
    }
}

pub(crate) struct HaCtl {
    pub cfg: HaConfig,
    pub state: watch::Receiver<HaState>,
    /// The token the engine runs under as leader; `None`: a follower engine
    /// (dry-run, writes nothing to the shared store).
    pub acting: Option<u64>,
    /// `acting.is_some()`, for the notification delivery task.
    pub acting_tx: watch::Sender<bool>,
    pub fence_file: PathBuf,
    pub no_fence: bool,
    /// The last write to the shared store failed.
    pub store_down: bool,
    pub cell: HaCell,
    /// etcd client for the locks (connected at the first action).
    pub etcd: Option<medic_ha::etcd_client::Client>,
    /// Locks held per running action, released with its outcome.
    pub held: std::collections::BTreeMap<medic_core::ActionId, medic_ha::locks::Held>,
    /// Audit-worthy events recorded locally while cut off (fail safe).
    pub spool: Spool,
    /// No new attempt to claim the shared store before this (backoff while
    /// it is unreachable).
    pub retry_at: Option<Instant>,
    pub backoff: std::time::Duration,
    /// Local-journal events replayed since start.
    pub replayed: u64,
}

/// Why an action's locks were not taken.
pub(crate) enum LockRefusal {
    /// Another holder (or an operator) holds one: the action is not run.
    Busy(String),
    /// This instance no longer holds the election: step down.
    Fenced(String),
    /// etcd did not answer: the action is not run.
    Unavailable(String),
}

impl HaCtl {
    pub fn verdict(&self) -> Verdict {
        self.state
            .borrow()
            .verdict(Instant::now(), self.cfg.lease_ttl, self.cfg.drift_margin)
    }

    /// May this instance write to the shared store and act now, under the
    /// token its engine runs with?
    pub fn may_write(&self) -> Option<u64> {
        match (self.verdict(), self.acting) {
            (Verdict::Act { token, .. }, Some(a)) if a == token => Some(token),
            _ => None,
        }
    }

    /// Why this instance records locally instead of in the shared store,
    /// when it is cut off (a plain follower is not: the leader records).
    pub fn cut_off(&self) -> Option<&'static str> {
        if self.store_down {
            return Some("store_unreachable");
        }
        match self.verdict() {
            Verdict::Hold(Hold::EtcdUnreachable) => Some("etcd_unreachable"),
            Verdict::Hold(Hold::LostLease) => Some("lost_lease"),
            _ => None,
        }
    }

    /// The shared store failed: wait before the next claim, doubling up to
    /// 5 s.
    pub fn store_failed(&mut self) {
        self.store_down = true;
        self.backoff = (self.backoff * 2).clamp(
            std::time::Duration::from_millis(250),
            std::time::Duration::from_secs(5),
        );
        self.retry_at = Some(Instant::now() + self.backoff);
    }

    pub fn publish(&self) {
        let s = self.state.borrow().clone();
        let verdict = self.verdict();
        let reason = match verdict {
            Verdict::Act { .. } if self.store_down => Some("store_unreachable"),
            Verdict::Act { token, .. } if self.acting == Some(token) => None,
            // Elected, the engine not switched over yet.
            Verdict::Act { .. } => Some("follower"),
            Verdict::Hold(Hold::Follower) => Some("follower"),
            Verdict::Hold(Hold::LostLease) => Some("lost_lease"),
            Verdict::Hold(Hold::EtcdUnreachable) => Some("etcd_unreachable"),
        };
        self.cell.set(HaView {
            member: s.member.clone(),
            acting: reason.is_none(),
            reason,
            token: self.acting,
            leader: s.leader.clone(),
            terms: s.terms,
            last_renew_unix_ms: s.renewed_unix_ms,
            journal_events: u64::try_from(self.spool.len()).unwrap_or(u64::MAX),
            journal_dropped: self.spool.dropped,
            replayed: self.replayed,
        });
    }

    /// The process executor's fence: refuse an action whose token is older
    /// than the newest that acted on this host (skipped by the deliberate-bug
    /// switch).
    pub fn fence(&self, token: u64) -> Result<(), String> {
        if self.no_fence {
            return Ok(());
        }
        medic_ha::fence::admit(&self.fence_file, token).map_err(|e| e.to_string())
    }

    /// Take the action's locks in etcd (its service, then its incident), on
    /// this leader's session lease and fenced by its election key.
    pub async fn lock(&mut self, req: &medic_core::ActionRequest) -> Result<(), LockRefusal> {
        use medic_ha::locks::{Lock, Scope, Session};
        let st = self.state.borrow().clone();
        let (Some(lease), Some(leader_key), Some(token)) = (st.lease, st.leader_key, st.elected)
        else {
            return Err(LockRefusal::Fenced("no election key".into()));
        };
        if self.etcd.is_none() {
            match medic_ha::elector::connect(&self.cfg.etcd, self.cfg.lease_ttl / 3).await {
                Ok(c) => self.etcd = Some(c),
                Err(e) => return Err(LockRefusal::Unavailable(e.to_string())),
            }
        }
        let Some(client) = self.etcd.as_mut() else {
            return Err(LockRefusal::Unavailable("no etcd client".into()));
        };
        let session = Session {
            prefix: self.cfg.prefix.clone(),
            lease,
            leader_key,
            token,
            member: st.member.clone(),
            fenced: !self.no_fence,
        };
        let mut locks = vec![Lock::new(Scope::Service, req.service.clone())];
        if let Some(i) = &req.incident {
            locks.push(Lock::new(Scope::Incident, i.0.clone()));
        }
        let r = tokio::time::timeout(
            self.cfg.lease_ttl / 3,
            medic_ha::locks::acquire(client, &session, locks, &req.id.to_string()),
        )
        .await;
        match r {
            Ok(Ok(held)) => {
                self.held.insert(req.id, held);
                Ok(())
            }
            Ok(Err(medic_ha::locks::LockError::Busy { lock, holder })) => {
                Err(LockRefusal::Busy(format!("{lock} is held by {holder}")))
            }
            Ok(Err(e @ medic_ha::locks::LockError::Fenced { .. })) => {
                Err(LockRefusal::Fenced(e.to_string()))
            }
            Ok(Err(e)) => {
                self.etcd = None;
                Err(LockRefusal::Unavailable(e.to_string()))
            }
            Err(_) => {
                self.etcd = None;
                Err(LockRefusal::Unavailable(
                    "etcd did not answer in time".into(),
                ))
            }
        }
    }

    /// Release an action's locks in the background (they expire with the
    /// session's lease anyway).
    pub fn unlock(&mut self, id: medic_core::ActionId) {
        let Some(held) = self.held.remove(&id) else {
            return;
        };
        if let Some(mut c) = self.etcd.clone() {
            tokio::spawn(async move { medic_ha::locks::release(&mut c, &held).await });
        }
    }
}

/// How many events the local journal keeps while the shared store (or etcd)
/// is unreachable (docs/ha.md, "fail safe").
pub const SPOOL_MAX: usize = 10_000;

/// One audit-worthy event recorded locally, with its original time.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq)]
pub(crate) struct Spooled {
    pub ts: String,
    pub kind: String,
    pub payload: serde_json::Value,
    /// Why it was not written to the shared store (`store_unreachable`, ...).
    pub reason: String,
}

impl Spooled {
    /// Critical events are kept when the journal is full: actions and the
    /// HA state changes; the oldest other event is dropped instead.
    fn critical(&self) -> bool {
        self.kind.starts_with("action.") || self.kind.starts_with("ha.")
    }
}

/// The bounded local journal of a member that cannot write to the shared
/// store: a JSON-lines file (`ha.journal.jsonl` beside the database) and its
/// in-memory copy, at most [`SPOOL_MAX`] events. When full, the oldest
/// non-critical event is dropped (the oldest event if all are critical) and
/// counted. Replayed into the shared audit chain by the next acting leader
/// run of this member, then emptied.
pub(crate) struct Spool {
    path: PathBuf,
    events: std::collections::VecDeque<Spooled>,
    max: usize,
    pub dropped: u64,
}

impl Spool {
    /// Opens (and reads back) the journal at `path`; unreadable lines are
    /// skipped with a warning.
    pub fn open(path: PathBuf, max: usize) -> Spool {
        let mut events = std::collections::VecDeque::new();
        if let Ok(text) = std::fs::read_to_string(&path) {
            for (i, line) in text.lines().enumerate() {
                match serde_json::from_str::<Spooled>(line) {
                    Ok(e) => events.push_back(e),
                    Err(e) => tracing::warn!(path = %path.display(), line = i + 1, error = %e,
                        "ha: unreadable local journal line skipped"),
                }
            }
        }
        let mut s = Spool {
            path,
            events,
            max: max.max(1),
            dropped: 0,
        };
        if s.events.len() > s.max {
            while s.events.len() > s.max {
                s.evict();
            }
            s.rewrite();
        }
        s
    }

    pub fn len(&self) -> usize {
        self.events.len()
    }

    pub fn front(&self) -> Option<&Spooled> {
        self.events.front()
    }

    fn evict(&mut self) {
        let i = self.events.iter().position(|e| !e.critical()).unwrap_or(0);
        self.events.remove(i);
        self.dropped += 1;
    }

    /// Records one event (appended to the file; the file is rewritten when
    /// an event had to be dropped).
    pub fn push(&mut self, e: Spooled) {
        let full = self.events.len() >= self.max;
        if full {
            self.evict();
        }
        let line = serde_json::to_string(&e).unwrap_or_default();
        self.events.push_back(e);
        if full {
            self.rewrite();
            return;
        }
        use std::io::Write;
        let r = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .and_then(|mut f| writeln!(f, "{line}"));
        if let Err(e) = r {
            tracing::error!(path = %self.path.display(), error = %e, "ha: writing the local journal failed (kept in memory)");
        }
    }

    /// The first event was written to the shared store.
    pub fn pop(&mut self) {
        self.events.pop_front();
        if self.events.is_empty() {
            if let Err(e) = std::fs::write(&self.path, b"") {
                tracing::error!(path = %self.path.display(), error = %e, "ha: emptying the local journal failed");
            }
        }
    }

    /// Rewrites the file from memory (after a drop, or a partial replay).
    pub fn rewrite(&self) {
        let mut text = String::new();
        for e in &self.events {
            text.push_str(&serde_json::to_string(e).unwrap_or_default());
            text.push('\n');
        }
        if let Err(e) = std::fs::write(&self.path, text) {
            tracing::error!(path = %self.path.display(), error = %e, "ha: rewriting the local journal failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(kind: &str, n: u32) -> Spooled {
        Spooled {
            ts: format!("2026-01-01T00:00:{n:02}Z"),
            kind: kind.into(),
            payload: serde_json::json!({ "n": n }),
            reason: "store_unreachable".into(),
        }
    }

    #[test]
    fn the_spool_is_bounded_drops_the_oldest_non_critical_and_survives_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j.jsonl");
        let mut s = Spool::open(path.clone(), 3);
        s.push(ev("action.intent", 1));
        s.push(ev("incident.opened", 2));
        s.push(ev("incident.changed", 3));
        s.push(ev("action.outcome", 4));
        assert_eq!(s.dropped, 1);
        let kinds: Vec<_> = s.events.iter().map(|e| e.kind.clone()).collect();
        assert_eq!(
            kinds,
            ["action.intent", "incident.changed", "action.outcome"]
        );
        let again = Spool::open(path.clone(), 3);
        assert_eq!(again.events, s.events);
        s.pop();
        s.rewrite();
        assert_eq!(Spool::open(path.clone(), 3).len(), 2);
        s.pop();
        s.pop();
        assert_eq!(Spool::open(path, 3).len(), 0);
    }
}
