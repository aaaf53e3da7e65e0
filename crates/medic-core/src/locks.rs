//! Locks and conflicts (issue 10): pure, sans-IO, deterministic.
//!
//! A [`LockTable`] holds one lock per target ([`LockKey`]: a [`LockScope`]
//! and a name) with a TTL (default 300 s). Locks are taken in one fixed
//! order, SYSTEM → SERVICE → INCIDENT → DEPLOYMENT (then by name): a request
//! names its keys in that order, and a holder that already holds locks may
//! only add keys after the last one it holds ([`LockReason::LockOrder`]
//! otherwise), so two holders can never wait for each other.
//!
//! Conflicts go beyond one key: a request conflicts with a lock of another
//! holder when
//! - it is the same key, or either is a SYSTEM lock ([`LockReason::LockHeld`]);
//! - the two SERVICE targets are a service and its direct dependency in the
//!   [`Topology`] (`depends_on`) ([`LockReason::ConflictDependency`]);
//! - their blast radii (the services each action affects) overlap
//!   ([`LockReason::ConflictBlastRadius`]).
//!
//! A conflicting request is either refused or queued: the wait queue is
//! bounded (`max_waiters`, [`LockReason::LockQueueFull`] beyond), FIFO (a
//! waiter never overtakes an earlier one it conflicts with) and each waiter
//! has a deadline ([`LockReason::LockTimeout`]). Expired locks are reclaimed
//! by [`LockTable::tick`]; an operator may [`LockTable::force_release`] one.
//!
//! Nothing here knows where the table lives: the engine keeps it in its
//! durable safety state (`Snapshot`), and a distributed backend (etcd) can
//! keep the same records (key, holder, expiry) with the same rules.
use std::collections::VecDeque;
use std::fmt;
use std::time::Duration;

use crate::time::MonoTime;

/// Lock scopes in their acquisition order (`Ord` is that order).
#[derive(
    Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub enum LockScope {
    /// The whole fleet: conflicts with every other lock.
    System,
    Service,
    Incident,
    Deployment,
}

impl LockScope {
    pub fn as_str(self) -> &'static str {
        match self {
            LockScope::System => "system",
            LockScope::Service => "service",
            LockScope::Incident => "incident",
            LockScope::Deployment => "deployment",
        }
    }

    pub fn parse(s: &str) -> Option<LockScope> {
        match s {
            "system" => Some(LockScope::System),
            "service" => Some(LockScope::Service),
            "incident" => Some(LockScope::Incident),
            "deployment" => Some(LockScope::Deployment),
            _ => None,
        }
    }
}

/// One lockable target. `Ord` is the acquisition order.
#[derive(
    Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub struct LockKey {
    pub scope: LockScope,
    pub target: String,
}

impl LockKey {
    pub fn new(scope: LockScope, target: impl Into<String>) -> LockKey {
        LockKey {
            scope,
            target: target.into(),
        }
    }

    pub fn system() -> LockKey {
        LockKey::new(LockScope::System, "system")
    }

    pub fn service(name: impl Into<String>) -> LockKey {
        LockKey::new(LockScope::Service, name)
    }

    /// Parse `scope:target` (the CLI and API form).
    pub fn parse(s: &str) -> Option<LockKey> {
        let (scope, target) = s.split_once(':')?;
        let scope = LockScope::parse(scope)?;
        (!target.is_empty()).then(|| LockKey::new(scope, target))
    }
}

impl fmt::Display for LockKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.scope.as_str(), self.target)
    }
}

/// A held lock.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Lock {
    pub key: LockKey,
    /// Who holds it (the engine uses `action-<id>`).
    pub holder: String,
    pub acquired: MonoTime,
    pub expires: MonoTime,
    /// The services the holder's action affects (sorted, deduplicated).
    pub radius: Vec<String>,
}

/// Why a request did not get its locks.
#[derive(Copy, Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum LockReason {
    /// The same target (or the SYSTEM lock) is held by another holder.
    LockHeld,
    /// Another holder acts on a direct dependency or dependent of the target.
    ConflictDependency,
    /// The two actions' blast radii overlap.
    ConflictBlastRadius,
    /// The request's keys are not in SYSTEM → SERVICE → INCIDENT →
    /// DEPLOYMENT order, or come before a key the holder already holds.
    LockOrder,
    /// Queued longer than `max_wait`.
    LockTimeout,
    /// The wait queue is full.
    LockQueueFull,
    /// The table holds `max_locks` locks already.
    LockTableFull,
}

impl LockReason {
    pub fn as_str(self) -> &'static str {
        match self {
            LockReason::LockHeld => "lock_held",
            LockReason::ConflictDependency => "conflict_dependency",
            LockReason::ConflictBlastRadius => "conflict_blast_radius",
            LockReason::LockOrder => "lock_order",
            LockReason::LockTimeout => "lock_timeout",
            LockReason::LockQueueFull => "lock_queue_full",
            LockReason::LockTableFull => "lock_table_full",
        }
    }
}

/// A reason with the lock that caused it (when one did).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Conflict {
    pub reason: LockReason,
    /// The held lock the request collides with.
    pub key: Option<LockKey>,
    /// Its holder.
    pub holder: Option<String>,
}

impl Conflict {
    fn bare(reason: LockReason) -> Conflict {
        Conflict {
            reason,
            key: None,
            holder: None,
        }
    }
}

impl fmt::Display for Conflict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.reason.as_str())?;
        if let (Some(k), Some(h)) = (&self.key, &self.holder) {
            write!(f, " ({k} held by {h})")?;
        }
        Ok(())
    }
}

/// `depends_on` edges (caller → callee), sorted, for conflict checks.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Topology {
    edges: Vec<(String, String)>,
}

impl Topology {
    pub fn new(edges: impl IntoIterator<Item = (String, String)>) -> Topology {
        let mut edges: Vec<_> = edges.into_iter().filter(|(a, b)| a != b).collect();
        edges.sort();
        edges.dedup();
        Topology { edges }
    }

    fn has(&self, a: &str, b: &str) -> bool {
        self.edges
            .binary_search_by(|(x, y)| (x.as_str(), y.as_str()).cmp(&(a, b)))
            .is_ok()
    }

    /// `a` depends on `b` or `b` on `a` (directly).
    pub fn adjacent(&self, a: &str, b: &str) -> bool {
        self.has(a, b) || self.has(b, a)
    }

    pub fn edges(&self) -> &[(String, String)] {
        &self.edges
    }
}

/// Lock table limits.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LockConfig {
    /// Lifetime of a lock unless renewed (default 300 s).
    pub ttl: Duration,
    /// Longest a queued request waits before it fails with `lock_timeout`.
    pub max_wait: Duration,
    /// Bound of the wait queue.
    pub max_waiters: usize,
    /// Bound of the table.
    pub max_locks: usize,
}

impl Default for LockConfig {
    fn default() -> Self {
        LockConfig {
            ttl: Duration::from_secs(300),
            max_wait: Duration::from_secs(300),
            max_waiters: 64,
            max_locks: 4096,
        }
    }
}

/// What a holder asks for.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LockRequest {
    pub holder: String,
    /// In acquisition order, no duplicates.
    pub keys: Vec<LockKey>,
    /// Services the action affects besides its SERVICE targets.
    pub radius: Vec<String>,
}

impl LockRequest {
    /// The locks of an action on `service`, for `incident` (if any), with
    /// its blast radius.
    pub fn for_action(
        holder: impl Into<String>,
        service: &str,
        incident: Option<&str>,
        radius: &[String],
    ) -> LockRequest {
        let mut keys = vec![LockKey::service(service)];
        if let Some(i) = incident {
            keys.push(LockKey::new(LockScope::Incident, i));
        }
        LockRequest {
            holder: holder.into(),
            keys,
            radius: radius.to_vec(),
        }
    }

    /// Every service the request affects: its SERVICE targets and radius.
    fn services(&self) -> Vec<String> {
        let mut s: Vec<String> = self
            .keys
            .iter()
            .filter(|k| k.scope == LockScope::Service)
            .map(|k| k.target.clone())
            .chain(self.radius.iter().cloned())
            .collect();
        s.sort();
        s.dedup();
        s
    }
}

/// The answer to [`LockTable::acquire`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Acquire {
    /// Every key is held by the requester now.
    Granted(Vec<Lock>),
    /// Waiting (1-based position); granted later by [`LockTable::tick`].
    Queued {
        position: usize,
        conflict: Conflict,
    },
    Refused(Conflict),
}

/// Whether a conflicting request waits or is refused at once.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum OnConflict {
    Queue,
    Refuse,
}

/// What [`LockTable::tick`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LockEvent {
    /// An expired lock was removed.
    Reclaimed(Lock),
    /// A queued request got its locks.
    Granted { holder: String, locks: Vec<Lock> },
    /// A queued request waited too long and was dropped.
    TimedOut { holder: String, conflict: Conflict },
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct Waiter {
    req: LockRequest,
    since: MonoTime,
    deadline: MonoTime,
}

/// The lock table. Deterministic: plain vectors, kept sorted by key.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LockTable {
    cfg: LockConfig,
    /// Sorted by key; at most one lock per key.
    locks: Vec<Lock>,
    waiters: VecDeque<Waiter>,
}

fn overlap(a: &[String], b: &[String]) -> bool {
    // Both sorted.
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Equal => return true,
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
        }
    }
    false
}

/// The conflict between one key (with its holder's services) and a held lock
/// of another holder, most specific reason first.
fn conflict_of(
    topo: &Topology,
    key: &LockKey,
    services: &[String],
    held: &Lock,
) -> Option<LockReason> {
    if key == &held.key || key.scope == LockScope::System || held.key.scope == LockScope::System {
        return Some(LockReason::LockHeld);
    }
    if key.scope == LockScope::Service
        && held.key.scope == LockScope::Service
        && topo.adjacent(&key.target, &held.key.target)
    {
        return Some(LockReason::ConflictDependency);
    }
    if key.scope == LockScope::Service
        && held.key.scope == LockScope::Service
        && overlap(services, &held.radius)
    {
        return Some(LockReason::ConflictBlastRadius);
    }
    None
}

impl LockTable {
    pub fn new(cfg: LockConfig) -> LockTable {
        LockTable {
            cfg,
            locks: Vec::new(),
            waiters: VecDeque::new(),
        }
    }

    /// The same locks and waiters under other limits (a restored table
    /// under the current config).
    pub fn with_config(mut self, cfg: LockConfig) -> LockTable {
        self.cfg = cfg;
        self
    }

    pub fn config(&self) -> &LockConfig {
        &self.cfg
    }

    /// Held locks, in key order.
    pub fn held(&self) -> &[Lock] {
        &self.locks
    }

    /// Queued requests with the time they were queued, in queue order.
    pub fn waiting(&self) -> impl Iterator<Item = (&LockRequest, MonoTime)> {
        self.waiters.iter().map(|w| (&w.req, w.since))
    }

    pub fn holds(&self, holder: &str) -> bool {
        self.locks.iter().any(|l| l.holder == holder)
    }

    fn order_ok(&self, req: &LockRequest) -> bool {
        let ascending = req.keys.windows(2).all(|w| w[0] < w[1]);
        let last = self
            .locks
            .iter()
            .filter(|l| l.holder == req.holder)
            .map(|l| &l.key)
            .max();
        ascending && !req.keys.is_empty() && last.is_none_or(|l| req.keys[0] > *l)
    }

    /// The first conflict of `req` with a lock of another holder, or with
    /// one of `ahead` (requests queued before it).
    fn conflict(&self, topo: &Topology, req: &LockRequest, ahead: &[&Waiter]) -> Option<Conflict> {
        let services = req.services();
        for key in &req.keys {
            for held in self.locks.iter().filter(|l| l.holder != req.holder) {
                if let Some(reason) = conflict_of(topo, key, &services, held) {
                    return Some(Conflict {
                        reason,
                        key: Some(held.key.clone()),
                        holder: Some(held.holder.clone()),
                    });
                }
            }
            for w in ahead.iter().filter(|w| w.req.holder != req.holder) {
                let theirs = w.req.services();
                for k in &w.req.keys {
                    let pending = Lock {
                        key: k.clone(),
                        holder: w.req.holder.clone(),
                        acquired: w.since,
                        expires: w.deadline,
                        radius: theirs.clone(),
                    };
                    if let Some(reason) = conflict_of(topo, key, &services, &pending) {
                        return Some(Conflict {
                            reason,
                            key: Some(k.clone()),
                            holder: Some(w.req.holder.clone()),
                        });
                    }
                }
            }
        }
        None
    }

    fn grant(&mut self, now: MonoTime, req: &LockRequest) -> Vec<Lock> {
        let radius = req.services();
        let mut out = Vec::with_capacity(req.keys.len());
        for key in &req.keys {
            let lock = Lock {
                key: key.clone(),
                holder: req.holder.clone(),
                acquired: now,
                expires: now.plus(self.cfg.ttl),
                radius: radius.clone(),
            };
            match self.locks.binary_search_by(|l| l.key.cmp(key)) {
                Ok(i) => self.locks[i] = lock.clone(),
                Err(i) => self.locks.insert(i, lock.clone()),
            }
            out.push(lock);
        }
        out
    }

    /// Try to take every key of `req` at `now` (all or nothing). Expired
    /// locks should be reclaimed first ([`LockTable::tick`]); a lock past
    /// its expiry never blocks anyway.
    pub fn acquire(
        &mut self,
        now: MonoTime,
        topo: &Topology,
        req: LockRequest,
        on_conflict: OnConflict,
    ) -> Acquire {
        self.locks.retain(|l| l.expires > now);
        // Keys the holder holds already are kept (asking again is harmless).
        let mut req = req;
        let before = req.keys.len();
        req.keys.retain(|k| {
            !self
                .locks
                .iter()
                .any(|l| &l.key == k && l.holder == req.holder)
        });
        if before > 0 && req.keys.is_empty() {
            let mine = self.locks.iter().filter(|l| l.holder == req.holder);
            return Acquire::Granted(mine.cloned().collect());
        }
        if !self.order_ok(&req) {
            return Acquire::Refused(Conflict::bare(LockReason::LockOrder));
        }
        // A queued holder asking again keeps its place.
        if let Some(pos) = self.waiters.iter().position(|w| w.req.holder == req.holder) {
            let ahead: Vec<&Waiter> = self.waiters.iter().take(pos).collect();
            return match self.conflict(topo, &self.waiters[pos].req, &ahead) {
                Some(conflict) => Acquire::Queued {
                    position: pos + 1,
                    conflict,
                },
                None => {
                    let w = self.waiters.remove(pos);
                    match w {
                        Some(w) => Acquire::Granted(self.grant(now, &w.req)),
                        None => Acquire::Refused(Conflict::bare(LockReason::LockQueueFull)),
                    }
                }
            };
        }
        let ahead: Vec<&Waiter> = self.waiters.iter().collect();
        match self.conflict(topo, &req, &ahead) {
            None if self.locks.len() + req.keys.len() > self.cfg.max_locks => {
                Acquire::Refused(Conflict::bare(LockReason::LockTableFull))
            }
            None => Acquire::Granted(self.grant(now, &req)),
            Some(c) if on_conflict == OnConflict::Refuse => Acquire::Refused(c),
            Some(_) if self.waiters.len() >= self.cfg.max_waiters => {
                Acquire::Refused(Conflict::bare(LockReason::LockQueueFull))
            }
            Some(conflict) => {
                self.waiters.push_back(Waiter {
                    req,
                    since: now,
                    deadline: now.plus(self.cfg.max_wait),
                });
                Acquire::Queued {
                    position: self.waiters.len(),
                    conflict,
                }
            }
        }
    }

    /// Whether `req` would get its locks now, without changing the table:
    /// its first conflict with a held lock or with a waiter ahead of it (all
    /// waiters when it is not queued). `None`: [`LockTable::acquire`] grants.
    pub fn check(&self, now: MonoTime, topo: &Topology, req: &LockRequest) -> Option<Conflict> {
        let live = LockTable {
            cfg: self.cfg.clone(),
            locks: self
                .locks
                .iter()
                .filter(|l| l.expires > now)
                .cloned()
                .collect(),
            waiters: VecDeque::new(),
        };
        let pos = self
            .waiters
            .iter()
            .position(|w| w.req.holder == req.holder)
            .unwrap_or(self.waiters.len());
        let ahead: Vec<&Waiter> = self.waiters.iter().take(pos).collect();
        live.conflict(topo, req, &ahead)
    }

    /// Reclaim expired locks and drop timed-out waiters, granting nothing
    /// (for a driver that grants by asking again, as the engine does).
    pub fn expire(&mut self, now: MonoTime, topo: &Topology) -> Vec<LockEvent> {
        let mut events = Vec::new();
        let (expired, live): (Vec<Lock>, Vec<Lock>) = std::mem::take(&mut self.locks)
            .into_iter()
            .partition(|l| l.expires <= now);
        self.locks = live;
        events.extend(expired.into_iter().map(LockEvent::Reclaimed));
        let mut i = 0;
        while i < self.waiters.len() {
            if self.waiters[i].deadline > now {
                i += 1;
                continue;
            }
            let ahead: Vec<&Waiter> = self.waiters.iter().take(i).collect();
            let conflict = self
                .conflict(topo, &self.waiters[i].req, &ahead)
                .unwrap_or(Conflict::bare(LockReason::LockTimeout));
            if let Some(w) = self.waiters.remove(i) {
                events.push(LockEvent::TimedOut {
                    holder: w.req.holder,
                    conflict: Conflict {
                        reason: LockReason::LockTimeout,
                        ..conflict
                    },
                });
            }
        }
        events
    }

    /// Release the locks of `holder`, keeping its place in the queue.
    pub fn release_locks(&mut self, holder: &str) -> Vec<Lock> {
        let (gone, kept): (Vec<Lock>, Vec<Lock>) = std::mem::take(&mut self.locks)
            .into_iter()
            .partition(|l| l.holder == holder);
        self.locks = kept;
        gone
    }

    /// Take `holder` out of the queue; whether it was there.
    pub fn withdraw(&mut self, holder: &str) -> bool {
        let before = self.waiters.len();
        self.waiters.retain(|w| w.req.holder != holder);
        before != self.waiters.len()
    }

    /// Reclaim expired locks, drop timed-out waiters, then grant the queue
    /// in order.
    pub fn tick(&mut self, now: MonoTime, topo: &Topology) -> Vec<LockEvent> {
        let mut events = Vec::new();
        let (expired, live): (Vec<Lock>, Vec<Lock>) = std::mem::take(&mut self.locks)
            .into_iter()
            .partition(|l| l.expires <= now);
        self.locks = live;
        events.extend(expired.into_iter().map(LockEvent::Reclaimed));
        let mut i = 0;
        while i < self.waiters.len() {
            let ahead: Vec<&Waiter> = self.waiters.iter().take(i).collect();
            let w = &self.waiters[i];
            let conflict = self.conflict(topo, &w.req, &ahead);
            let timed_out = w.deadline <= now;
            match (conflict, timed_out) {
                (Some(conflict), true) => {
                    let holder = w.req.holder.clone();
                    self.waiters.remove(i);
                    events.push(LockEvent::TimedOut {
                        holder,
                        conflict: Conflict {
                            reason: LockReason::LockTimeout,
                            ..conflict
                        },
                    });
                }
                (Some(_), false) => i += 1,
                (None, _) if self.locks.len() + w.req.keys.len() > self.cfg.max_locks => i += 1,
                (None, _) => {
                    if let Some(w) = self.waiters.remove(i) {
                        let locks = self.grant(now, &w.req);
                        events.push(LockEvent::Granted {
                            holder: w.req.holder,
                            locks,
                        });
                    }
                }
            }
        }
        events
    }

    /// Extend every lock of `holder` to `now + ttl`; how many.
    pub fn renew(&mut self, now: MonoTime, holder: &str) -> usize {
        let until = now.plus(self.cfg.ttl);
        let mut n = 0;
        for l in self.locks.iter_mut().filter(|l| l.holder == holder) {
            l.expires = until;
            n += 1;
        }
        n
    }

    /// Release every lock of `holder` and drop it from the queue.
    pub fn release(&mut self, holder: &str) -> Vec<Lock> {
        self.waiters.retain(|w| w.req.holder != holder);
        let (gone, kept): (Vec<Lock>, Vec<Lock>) = std::mem::take(&mut self.locks)
            .into_iter()
            .partition(|l| l.holder == holder);
        self.locks = kept;
        gone
    }

    /// An operator removes the lock on `key`, whoever holds it.
    pub fn force_release(&mut self, key: &LockKey) -> Option<Lock> {
        let i = self.locks.binary_search_by(|l| l.key.cmp(key)).ok()?;
        Some(self.locks.remove(i))
    }

    /// The earliest expiry or waiter deadline, for the driver's timer.
    pub fn next_deadline(&self) -> Option<MonoTime> {
        self.locks
            .iter()
            .map(|l| l.expires)
            .chain(self.waiters.iter().map(|w| w.deadline))
            .min()
    }

    /// After a restart: the saved table was at `saved_now` on the old clock,
    /// medic was down for `downtime`, and the new clock starts at zero.
    /// Times move to the new clock; what expired while down expires at zero
    /// (reclaimed by the first tick).
    pub fn rebase(&mut self, saved_now: MonoTime, downtime: Duration) {
        let shift = saved_now.plus(downtime).as_millis();
        self.map_times(|t| MonoTime(t.as_millis().saturating_sub(shift)));
    }

    /// Move every time in the table to another clock.
    pub fn map_times(&mut self, at: impl Fn(MonoTime) -> MonoTime) {
        for l in &mut self.locks {
            l.acquired = at(l.acquired);
            l.expires = at(l.expires);
        }
        for w in &mut self.waiters {
            w.since = at(w.since);
            w.deadline = at(w.deadline);
        }
    }

    /// Whether any two locks of different holders conflict (must never be
    /// true; checked by the property test).
    pub fn has_conflicting_locks(&self, topo: &Topology) -> bool {
        self.locks.iter().enumerate().any(|(i, a)| {
            self.locks[i + 1..].iter().any(|b| {
                a.holder != b.holder
                    && (conflict_of(topo, &a.key, &a.radius, b).is_some()
                        || conflict_of(topo, &b.key, &b.radius, a).is_some())
            })
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn topo() -> Topology {
        Topology::new([("web".to_string(), "db".to_string())])
    }

    #[test]
    fn keys_order_and_parse() {
        assert!(LockKey::system() < LockKey::service("a"));
        assert!(LockKey::service("z") < LockKey::new(LockScope::Incident, "a"));
        assert!(LockKey::new(LockScope::Incident, "z") < LockKey::new(LockScope::Deployment, "a"));
        assert_eq!(LockKey::parse("service:web"), Some(LockKey::service("web")));
        assert_eq!(LockKey::parse("service:"), None);
        assert_eq!(LockKey::parse("pod:x"), None);
        assert_eq!(LockKey::service("web").to_string(), "service:web");
    }

    #[test]
    fn queue_grants_in_order_and_times_out() {
        let cfg = LockConfig {
            max_wait: Duration::from_secs(10),
            max_waiters: 1,
            ..LockConfig::default()
        };
        let mut t = LockTable::new(cfg);
        let tp = topo();
        let a = LockRequest::for_action("a", "web", None, &[]);
        assert!(matches!(
            t.acquire(MonoTime(0), &tp, a, OnConflict::Queue),
            Acquire::Granted(_)
        ));
        let b = LockRequest::for_action("b", "db", None, &[]);
        let r = t.acquire(MonoTime(1), &tp, b, OnConflict::Queue);
        assert!(
            matches!(&r, Acquire::Queued { position: 1, conflict } if conflict.reason == LockReason::ConflictDependency),
            "{r:?}"
        );
        let c = LockRequest::for_action("c", "web", None, &[]);
        assert_eq!(
            t.acquire(MonoTime(1), &tp, c, OnConflict::Queue),
            Acquire::Refused(Conflict::bare(LockReason::LockQueueFull))
        );
        assert_eq!(t.release("a").len(), 1);
        let ev = t.tick(MonoTime(2), &tp);
        assert!(matches!(&ev[..], [LockEvent::Granted { holder, .. }] if holder == "b"));
        // Timeout.
        let d = LockRequest::for_action("d", "db", None, &[]);
        assert!(matches!(
            t.acquire(MonoTime(3), &tp, d, OnConflict::Queue),
            Acquire::Queued { .. }
        ));
        let ev = t.tick(MonoTime(10_003), &tp);
        assert!(
            matches!(&ev[..], [LockEvent::TimedOut { holder, conflict }] if holder == "d" && conflict.reason == LockReason::LockTimeout),
            "{ev:?}"
        );
    }

    #[test]
    fn rebase_moves_times_to_the_new_clock() {
        let mut t = LockTable::new(LockConfig::default());
        let tp = Topology::default();
        let r = LockRequest::for_action("a", "web", None, &[]);
        t.acquire(MonoTime(100_000), &tp, r, OnConflict::Refuse);
        t.rebase(MonoTime(200_000), Duration::from_secs(100));
        // 300 s TTL from 100 s = 400 s; new clock zero = 300 s old.
        assert_eq!(t.held()[0].expires, MonoTime(100_000));
        t.rebase(MonoTime(0), Duration::from_secs(200));
        assert_eq!(t.held()[0].expires, MonoTime(0));
        assert!(matches!(
            &t.tick(MonoTime(0), &tp)[..],
            [LockEvent::Reclaimed(_)]
        ));
    }
}
