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
