//! Distributed locks in etcd (issue 13): one key per locked target,
//! `{prefix}/locks/{scope}/{name}`, taken in the fixed order SYSTEM → SERVICE
//! → INCIDENT → DEPLOYMENT (so two holders can never wait on each other),
//! attached to the leader's session lease (a dead leader's locks expire with
//! it, after the lease TTL), and fenced: each key is created in a transaction
//! that also requires the leader's election key to exist with the create
//! revision equal to the token, so a deposed leader cannot take a lock.
//! Operators force-release a lock with `medic cluster unlock`.
use etcd_client::{Client, Compare, CompareOp, GetOptions, PutOptions, Txn, TxnOp};
use serde::{Deserialize, Serialize};

/// Lock scopes, in the order they are taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    System,
    Service,
    Incident,
    Deployment,
}

impl Scope {
    pub const ALL: [Scope; 4] = [
        Scope::System,
        Scope::Service,
        Scope::Incident,
        Scope::Deployment,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::System => "system",
            Scope::Service => "service",
            Scope::Incident => "incident",
            Scope::Deployment => "deployment",
        }
    }

    pub fn parse(s: &str) -> Option<Scope> {
        Scope::ALL.into_iter().find(|x| x.as_str() == s)
    }
}

/// One lock: a scope and the target's name in it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Lock {
    pub scope: Scope,
    pub name: String,
}

impl Lock {
    pub fn new(scope: Scope, name: impl Into<String>) -> Lock {
        Lock {
            scope,
            name: name.into(),
        }
    }

    /// `scope/name`, e.g. `service/web`.
    pub fn parse(s: &str) -> Option<Lock> {
        let (scope, name) = s.split_once('/')?;
        let scope = Scope::parse(scope)?;
        (!name.is_empty() && !name.contains('/')).then(|| Lock::new(scope, name))
    }

    pub fn key(&self, prefix: &str) -> String {
        format!("{prefix}/locks/{}/{}", self.scope.as_str(), self.name)
    }
}

/// The order locks are taken in: by scope (SYSTEM first), then name; no
/// duplicates. Pure.
pub fn ordered(mut locks: Vec<Lock>) -> Vec<Lock> {
    locks.sort();
    locks.dedup();
    locks
}

/// A lock's value in etcd.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holder {
    pub member: String,
    pub token: u64,
    /// What holds it, e.g. an action id.
    pub what: String,
}

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("{lock} is held by {holder}")]
    Busy { lock: String, holder: String },
    #[error("fenced: token {token} no longer holds the election (a newer leader exists)")]
    Fenced { token: u64 },
    #[error("etcd: {0}")]
    Etcd(#[from] etcd_client::Error),
}

/// Locks taken by one holder, released together.
#[derive(Clone, Debug, Default)]
pub struct Held {
    pub keys: Vec<String>,
}

/// What the caller's session is: the lease the locks attach to and the
/// election key whose create revision is the token.
#[derive(Clone, Debug)]
pub struct Session {
    pub prefix: String,
    pub lease: i64,
    pub leader_key: Vec<u8>,
    pub token: u64,
    pub member: String,
    /// Check the election key in the same transaction (always, except under
    /// the deliberate-bug switch of the HA tests).
    pub fenced: bool,
}

/// Take `locks` in the fixed order; on any failure, release what was taken.
pub async fn acquire(
    client: &mut Client,
    s: &Session,
    locks: Vec<Lock>,
    what: &str,
) -> Result<Held, LockError> {
    let mut held = Held::default();
    let token = i64::try_from(s.token).unwrap_or(i64::MAX);
    let value = serde_json::to_string(&Holder {
        member: s.member.clone(),
        token: s.token,
        what: what.to_string(),
    })
    .unwrap_or_default();
    for lock in ordered(locks) {
        let key = lock.key(&s.prefix);
        let mut when = vec![Compare::create_revision(key.clone(), CompareOp::Equal, 0)];
        if s.fenced {
            when.push(Compare::create_revision(
                s.leader_key.clone(),
                CompareOp::Equal,
                token,
            ));
        }
        let txn = Txn::new().when(when).and_then(vec![TxnOp::put(
            key.clone(),
            value.clone(),
            Some(PutOptions::new().with_lease(s.lease)),
        )]);
        let ok = match client.txn(txn).await {
            Ok(r) => r.succeeded(),
            Err(e) => {
                release(client, &held).await;
                return Err(e.into());
            }
        };
        if ok {
            held.keys.push(key);
            continue;
        }
        // Which compare failed? The leader key, or the lock.
        let leader = client.get(s.leader_key.clone(), None).await;
        let current = client.get(key.clone(), None).await;
        release(client, &held).await;
        let still_leader = !s.fenced
            || leader.is_ok_and(|r| {
                r.kvs()
                    .first()
                    .is_some_and(|kv| kv.create_revision() == token)
            });
        if !still_leader {
            return Err(LockError::Fenced { token: s.token });
        }
        let holder = current
            .ok()
            .and_then(|r| r.kvs().first().map(|kv| kv.value().to_vec()))
            .map(|v| String::from_utf8_lossy(&v).into_owned())
            .unwrap_or_else(|| "someone".into());
        return Err(LockError::Busy {
            lock: format!("{}/{}", lock.scope.as_str(), lock.name),
            holder,
        });
    }
    Ok(held)
}

/// Release locks (best effort: they expire with the session's lease anyway).
pub async fn release(client: &mut Client, held: &Held) {
    for k in held.keys.iter().rev() {
        let _ = client.delete(k.clone(), None).await;
    }
}

/// Operator force-release: delete the lock whoever holds it. Returns the
/// holder it had, if any.
pub async fn force_release(
    client: &mut Client,
    prefix: &str,
    lock: &Lock,
) -> Result<Option<String>, etcd_client::Error> {
    let key = lock.key(prefix);
    let prev = client.get(key.clone(), None).await?;
    let holder = prev
        .kvs()
        .first()
        .map(|kv| String::from_utf8_lossy(kv.value()).into_owned());
    if holder.is_some() {
        client.delete(key, None).await?;
    }
    Ok(holder)
}

/// Every lock held: (`scope/name`, holder).
pub async fn list(
    client: &mut Client,
    prefix: &str,
) -> Result<Vec<(String, String)>, etcd_client::Error> {
    let base = format!("{prefix}/locks/");
    let r = client
        .get(base.clone(), Some(GetOptions::new().with_prefix()))
        .await?;
    Ok(r.kvs()
        .iter()
        .map(|kv| {
            (
                String::from_utf8_lossy(kv.key())
                    .trim_start_matches(&base)
                    .to_string(),
                String::from_utf8_lossy(kv.value()).into_owned(),
            )
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locks_are_taken_system_then_service_then_incident_then_deployment() {
        let got = ordered(vec![
            Lock::new(Scope::Deployment, "d"),
            Lock::new(Scope::Incident, "i"),
            Lock::new(Scope::Service, "web"),
            Lock::new(Scope::System, "all"),
            Lock::new(Scope::Service, "api"),
            Lock::new(Scope::Service, "web"),
        ]);
        let names: Vec<String> = got
            .iter()
            .map(|l| format!("{}/{}", l.scope.as_str(), l.name))
            .collect();
        assert_eq!(
            names,
            [
                "system/all",
                "service/api",
                "service/web",
                "incident/i",
                "deployment/d"
            ]
        );
    }

    #[test]
    fn lock_names_parse_scope_and_name() {
        assert_eq!(
            Lock::parse("service/web"),
            Some(Lock::new(Scope::Service, "web"))
        );
        assert_eq!(Lock::parse("nope/web"), None);
        assert_eq!(Lock::parse("service/"), None);
        assert_eq!(Lock::parse("service/a/b"), None);
        assert_eq!(
            Lock::new(Scope::Incident, "inc-1").key("medic"),
            "medic/locks/incident/inc-1"
        );
    }
}
