//! Locks and conflicts in the engine (issue 10): the pure table of
//! `crate::locks`, held by the engine in its durable safety state.
//!
//! - An action on service S (for incident I) takes SERVICE:S and, with an
//!   incident, INCIDENT:I, held by S; its blast radius is S and the services
//!   that depend on S directly (`depends_on`).
//! - The gate (8a) asks the table whether those locks would be granted; a
//!   conflict defers the incident with its reason code and queues it (FIFO,
//!   bounded): a later waiter never overtakes an earlier one it conflicts
//!   with. A full queue, or waiting longer than `locks.max_wait`, escalates.
//! - Locks are held while the action is in flight and released after every
//!   step in which it is no longer (outcome, restore, cancel); the TTL is a
//!   backstop that reclaims a lock left behind.
use super::Engine;
use crate::governance::ReasonCode;
use crate::locks::{Acquire, LockEvent, LockKey, LockReason, LockRequest, OnConflict};
use crate::types::Phase;

pub(crate) fn code_of(r: LockReason) -> ReasonCode {
    match r {
        LockReason::LockHeld | LockReason::LockOrder | LockReason::LockTableFull => {
            ReasonCode::LockHeld
        }
        LockReason::ConflictDependency => ReasonCode::ConflictDependency,
        LockReason::ConflictBlastRadius => ReasonCode::ConflictBlastRadius,
        LockReason::LockTimeout => ReasonCode::LockTimeout,
        LockReason::LockQueueFull => ReasonCode::LockQueueFull,
    }
}

impl Engine {
    /// The locks an action on `name` takes now.
    pub(super) fn lock_request(&self, name: &str) -> LockRequest {
        let incident = self
            .services
            .get(name)
            .and_then(|s| s.incident.as_ref())
            .map(|i| i.id.0.clone());
        let radius: Vec<String> = self
            .gov
            .topology
            .edges()
            .iter()
            .filter(|(_, callee)| callee == name)
            .map(|(caller, _)| caller.clone())
            .collect();
        LockRequest::for_action(name, name, incident.as_deref(), &radius)
    }

    /// Gate 8a: the reason code when the locks of an action on `name`
    /// would not be granted now.
    pub(super) fn lock_gate(&self, name: &str) -> Option<(ReasonCode, String)> {
        let req = self.lock_request(name);
        let c = self.locks.check(self.now, &self.gov.topology, &req)?;
        Some((code_of(c.reason), c.to_string()))
    }

    /// The incident of `name` was deferred by gate 8a: wait in the queue.
    /// `false` when the queue is full and the incident was escalated.
    pub(super) fn lock_wait(&mut self, name: &str) -> bool {
        let req = self.lock_request(name);
        let topo = self.gov.topology.clone();
        if let Acquire::Refused(c) = self.locks.acquire(self.now, &topo, req, OnConflict::Queue) {
            let limit = self.gov.locks.max_waiters;
            self.escalate(
                name,
                code_of(c.reason),
                format!("{c}: {limit} actions already wait for locks"),
            );
            return false;
        }
        true
    }

    /// Take the locks of an action on `name` that is about to run (gate 8a
    /// said they are free).
    pub(super) fn lock_take(&mut self, name: &str) {
        let req = self.lock_request(name);
        let topo = self.gov.topology.clone();
        let _ = self.locks.acquire(self.now, &topo, req, OnConflict::Refuse);
    }

    /// After every step: release the locks of services with no action in
    /// flight, and take out of the queue those no longer waiting for one.
    pub(super) fn sync_locks(&mut self) {
        let idle: Vec<String> = self
            .locks
            .held()
            .iter()
            .map(|l| l.holder.clone())
            .chain(self.locks.waiting().map(|(r, _)| r.holder.clone()))
            .collect();
        for holder in idle {
            let svc = self.services.get(&holder);
            if svc.is_none_or(|s| s.inflight.is_none()) {
                self.locks.release_locks(&holder);
            }
            let waiting = svc.is_some_and(|s| {
                s.inflight.is_none()
                    && s.incident
                        .as_ref()
                        .is_some_and(|i| i.phase == Phase::ConfirmingPattern)
            });
            if !waiting {
                self.locks.withdraw(&holder);
            }
        }
    }

    /// Reclaim expired locks; a waiter past `locks.max_wait` escalates.
    pub(super) fn expire_locks(&mut self) {
        let topo = self.gov.topology.clone();
        for ev in self.locks.expire(self.now, &topo) {
            match ev {
                LockEvent::TimedOut { holder, conflict } => {
                    let secs = self.gov.locks.max_wait.as_secs();
                    self.escalate(
                        &holder,
                        ReasonCode::LockTimeout,
                        format!("waited {secs}s for a lock: {conflict}"),
                    );
                }
                LockEvent::Reclaimed(l) => self.notice(crate::notice::Notice::LockReclaimed {
                    key: l.key.to_string(),
                    holder: l.holder,
                }),
                LockEvent::Granted { .. } => {}
            }
        }
    }

    /// An operator removes the lock on `key`; the holder, if it was held.
    pub(super) fn force_release_lock(&mut self, key: &LockKey) -> Option<String> {
        self.locks.force_release(key).map(|l| l.holder)
    }
}
