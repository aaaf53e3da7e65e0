//! The election loop (IO): a lease, a campaign on it, renewals every TTL/3,
//! the member record. Publishes what it knows as [`HaState`]; the decision
//! to act is [`crate::gate::may_act`] on that state.
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use etcd_client::{Client, ConnectOptions, GetOptions, PutOptions};
use tokio::sync::watch;

use crate::gate::{may_act, Standing, Verdict};
use crate::Member;

/// What an election loop needs.
#[derive(Clone, Debug)]
pub struct ElectorConfig {
    pub endpoints: Vec<String>,
    pub election: String,
    pub prefix: String,
    pub member: String,
    /// This member's API address, shown by `medic cluster status`.
    pub api: String,
    pub ttl: Duration,
    pub margin: Duration,
}

/// What the election loop last knew.
#[derive(Clone, Debug)]
pub struct HaState {
    pub member: String,
    /// The fencing token (the election key's create revision) once elected.
    pub elected: Option<u64>,
    /// Send time of the last keep-alive etcd answered.
    pub renewed_sent_at: Option<Instant>,
    /// Wall time of that renewal (unix ms), for display.
    pub renewed_unix_ms: Option<u64>,
    pub etcd_down: bool,
    /// The leader's member name, as last read from etcd.
    pub leader: Option<String>,
    /// The last etcd error, for logs and `/readyz`.
    pub error: Option<String>,
    /// Elections won by this process (the term count).
    pub terms: u64,
    /// The current session's lease (locks attach to it).
    pub lease: Option<i64>,
    /// This instance's election key while it leads (its create revision is
    /// the token).
    pub leader_key: Option<Vec<u8>>,
    epoch: Instant,
}

impl HaState {
    fn new(member: String) -> HaState {
        HaState {
            member,
            elected: None,
            renewed_sent_at: None,
            renewed_unix_ms: None,
            etcd_down: false,
            leader: None,
            error: None,
            terms: 0,
            lease: None,
            leader_key: None,
            epoch: Instant::now(),
        }
    }

    /// The gate's verdict at `now`.
    pub fn verdict(&self, now: Instant, ttl: Duration, margin: Duration) -> Verdict {
        let since = |t: Instant| t.saturating_duration_since(self.epoch);
        may_act(
            Standing {
                elected: self.elected,
                renewed_sent_at: self.renewed_sent_at.map(since),
                etcd_down: self.etcd_down,
            },
            since(now),
            ttl,
            margin,
        )
    }
}

pub(crate) fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// Start the election loop; it runs until `shutdown` turns true, then
/// resigns and revokes its lease so another instance takes over at once.
pub fn spawn(
    cfg: ElectorConfig,
    mut shutdown: watch::Receiver<bool>,
) -> (watch::Receiver<HaState>, tokio::task::JoinHandle<()>) {
    let (tx, rx) = watch::channel(HaState::new(cfg.member.clone()));
    let join = tokio::spawn(async move {
        loop {
            if *shutdown.borrow() {
                return;
            }
            // The session ends itself on shutdown, revoking its lease.
            let r = session(&cfg, &tx, shutdown.clone()).await;
            if *shutdown.borrow() {
                return;
            }
            if let Err(e) = r {
                tracing::warn!(error = %e, member = %cfg.member, "ha: etcd session ended");
                tx.send_modify(|s| {
                    s.etcd_down = true;
                    s.error = Some(e.to_string());
                });
            }
            tokio::select! {
                _ = tokio::time::sleep(cfg.ttl / 10) => {}
                _ = shutdown.wait_for(|s| *s) => return,
            }
        }
    });
    (rx, join)
}

#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("etcd: {0}")]
    Etcd(#[from] etcd_client::Error),
    #[error("etcd did not answer within {0:?}")]
    Timeout(Duration),
    #[error("the lease expired in etcd (keep-alive answered TTL 0)")]
    LeaseExpired,
    #[error("the election key is gone: another instance leads")]
    Deposed,
}

async fn within<T>(
    d: Duration,
    f: impl std::future::Future<Output = Result<T, etcd_client::Error>>,
) -> Result<T, SessionError> {
    match tokio::time::timeout(d, f).await {
        Ok(r) => Ok(r?),
        Err(_) => Err(SessionError::Timeout(d)),
    }
}

pub async fn connect(endpoints: &[String], timeout: Duration) -> Result<Client, SessionError> {
    let opts = ConnectOptions::new()
        .with_connect_timeout(timeout)
        .with_keep_alive(timeout, timeout);
    within(timeout, Client::connect(endpoints, Some(opts))).await
}

/// One lease's life: grant, campaign while renewing, lead while renewing.
async fn session(
    cfg: &ElectorConfig,
    tx: &watch::Sender<HaState>,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), SessionError> {
    let step = cfg.ttl / 3;
    let mut client = tokio::select! {
        c = connect(&cfg.endpoints, step) => c?,
        _ = shutdown.wait_for(|s| *s) => return Ok(()),
    };
    let ttl_secs = i64::try_from(cfg.ttl.as_secs().max(1)).unwrap_or(i64::MAX);
    let sent = Instant::now();
    let lease = within(step, client.lease_grant(ttl_secs, None)).await?.id();
    tx.send_modify(|s| {
        s.elected = None;
        s.leader_key = None;
        s.lease = Some(lease);
        s.etcd_down = false;
        s.error = None;
        s.renewed_sent_at = Some(sent);
        s.renewed_unix_ms = Some(unix_ms());
    });
    let r = tokio::select! {
        r = run_lease(cfg, tx, &mut client, lease) => r,
        _ = shutdown.wait_for(|s| *s) => Ok(()),
    };
    // Best effort: hand leadership over at once rather than at expiry (a
    // graceful stop, or a session that failed while etcd still answers).
    let _ = tokio::time::timeout(step, client.lease_revoke(lease)).await;
    tx.send_modify(|s| {
        s.elected = None;
        s.leader_key = None;
        s.lease = None;
    });
    r
}

async fn run_lease(
    cfg: &ElectorConfig,
    tx: &watch::Sender<HaState>,
    client: &mut Client,
    lease: i64,
) -> Result<(), SessionError> {
    let step = cfg.ttl / 3;
    let (mut keeper, mut stream) = within(step, client.lease_keep_alive(lease)).await?;
    let member_key = format!("{}/members/{}", cfg.prefix, cfg.member);
    let mut campaigner = client.election_client();
    let election = cfg.election.clone();
    let me = cfg.member.clone();
    let campaign = async move { campaigner.campaign(election, me, lease).await };
    tokio::pin!(campaign);
    let mut campaigning = true;
    let mut leader_key: Option<Vec<u8>> = None;
    let mut tick = tokio::time::interval(step);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            r = &mut campaign, if campaigning => {
                campaigning = false;
                let resp = r?;
                let Some(key) = resp.leader() else {
                    return Err(SessionError::Deposed);
                };
                let token = u64::try_from(key.rev()).unwrap_or(0);
                leader_key = Some(key.key().to_vec());
                tracing::info!(member = %cfg.member, token, "ha: elected leader");
                tx.send_modify(|s| {
                    s.elected = Some(token);
                    s.leader_key = Some(key.key().to_vec());
                    s.leader = Some(cfg.member.clone());
                    s.terms += 1;
                });
            }
            _ = tick.tick() => {
                let sent = Instant::now();
                within(step, keeper.keep_alive()).await?;
                let resp = match tokio::time::timeout(step, stream.message()).await {
                    Ok(r) => r?,
                    Err(_) => return Err(SessionError::Timeout(step)),
                };
                if resp.is_none_or(|r| r.ttl() <= 0) {
                    return Err(SessionError::LeaseExpired);
                }
                // Still the leader? Our key must still exist.
                if let Some(k) = &leader_key {
                    let got = within(step, client.get(k.clone(), None)).await?;
                    if got.kvs().is_empty() {
                        return Err(SessionError::Deposed);
                    }
                }
                let leader = match within(step, client.election_client().leader(cfg.election.clone())).await {
                    Ok(r) => r.kv().and_then(|kv| kv.value_str().ok().map(str::to_string)),
                    Err(_) => None,
                };
                let wall = unix_ms();
                let state = tx.borrow().clone();
                let rec = Member {
                    member: cfg.member.clone(),
                    api: cfg.api.clone(),
                    leader: state.elected.is_some(),
                    token: state.elected,
                    last_renew_unix_ms: wall,
                    pid: std::process::id(),
                };
                let value = serde_json::to_string(&rec).unwrap_or_default();
                within(step, client.put(member_key.clone(), value, Some(PutOptions::new().with_lease(lease)))).await?;
                tx.send_modify(|s| {
                    s.renewed_sent_at = Some(sent);
                    s.renewed_unix_ms = Some(wall);
                    s.etcd_down = false;
                    s.error = None;
                    s.leader = leader;
                });
            }
        }
    }
}

/// Every member record under `{prefix}/members/`.
pub(crate) async fn members(
    client: &mut Client,
    prefix: &str,
) -> Result<Vec<Member>, etcd_client::Error> {
    let resp = client
        .get(
            format!("{prefix}/members/"),
            Some(GetOptions::new().with_prefix()),
        )
        .await?;
    Ok(resp
        .kvs()
        .iter()
        .filter_map(|kv| serde_json::from_slice::<Member>(kv.value()).ok())
        .collect())
}
