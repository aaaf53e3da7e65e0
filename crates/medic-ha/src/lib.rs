//! High availability for medic (issue 13): leader election on an etcd lease,
//! the fencing token (the election key's create revision), the gate that says
//! when an instance may act, member records and the process executor's fence.
//!
//! The decision is pure ([`gate::may_act`]); etcd is touched only by
//! [`elector`] and [`cluster_status`]. See docs/ha.md.
pub mod elector;
pub mod fence;
pub mod gate;
pub mod local;
pub mod locks;

use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use elector::{spawn, ElectorConfig, HaState};
pub use etcd_client;
pub use gate::{may_act, Hold, Standing, Verdict};

/// A member's record in etcd (`{prefix}/members/{member}`, on its own lease,
/// rewritten at every renewal).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    pub member: String,
    pub api: String,
    /// The member believes it leads.
    pub leader: bool,
    pub token: Option<u64>,
    pub last_renew_unix_ms: u64,
    pub pid: u32,
}

/// The cluster as etcd sees it.
#[derive(Clone, Debug, Serialize)]
pub struct ClusterStatus {
    /// The election's leader (member name) and its fencing token.
    pub leader: Option<String>,
    pub token: Option<u64>,
    pub members: Vec<MemberStatus>,
}

#[derive(Clone, Debug, Serialize)]
pub struct MemberStatus {
    #[serde(flatten)]
    pub member: Member,
    /// How long ago its last renewal was (ms, by this host's wall clock).
    pub lag_ms: u64,
}

/// Read the leader and every member record.
pub async fn cluster_status(
    endpoints: &[String],
    election: &str,
    prefix: &str,
    timeout: Duration,
) -> Result<ClusterStatus, elector::SessionError> {
    let mut client = elector::connect(endpoints, timeout).await?;
    let (leader, token) =
        match tokio::time::timeout(timeout, client.election_client().leader(election)).await {
            Ok(Ok(r)) => match r.kv() {
                Some(kv) => (
                    kv.value_str().ok().map(str::to_string),
                    u64::try_from(kv.create_revision()).ok(),
                ),
                None => (None, None),
            },
            // "election: no leader" is an error in etcd's election API.
            Ok(Err(etcd_client::Error::GRpcStatus(s))) if s.message().contains("no leader") => {
                (None, None)
            }
            Ok(Err(e)) => return Err(e.into()),
            Err(_) => return Err(elector::SessionError::Timeout(timeout)),
        };
    let now = elector::unix_ms();
    let mut members: Vec<MemberStatus> =
        match tokio::time::timeout(timeout, elector::members(&mut client, prefix)).await {
            Ok(r) => r?,
            Err(_) => return Err(elector::SessionError::Timeout(timeout)),
        }
        .into_iter()
        .map(|m| MemberStatus {
            lag_ms: now.saturating_sub(m.last_renew_unix_ms),
            member: m,
        })
        .collect();
    members.sort_by(|a, b| a.member.member.cmp(&b.member.member));
    Ok(ClusterStatus {
        leader,
        token,
        members,
    })
}
