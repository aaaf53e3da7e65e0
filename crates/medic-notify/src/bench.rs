//! The kill/restart delivery check behind `medic bench notify` and the
//! delivery tests: a real store (temporary SQLite file), the real
//! [`Notifier`] and real loopback receivers for all five channel kinds,
//! which are killed and restarted while messages are queued and sent.
use std::collections::BTreeMap;
use std::time::Duration;

use medic_config::{ChannelSpec, NotifyConfig, NotifyRetry, RouteSpec};
use medic_core::{IncidentId, Notification, Severity};
use medic_store::Store;
use serde::Serialize;

use crate::loopback::Receiver;
use crate::{plan, Notifier};

/// Result of [`run`]. `duplicate` counts messages a receiver accepted more
/// than once (by id, over every channel of its lane); `lost` counts queued
/// messages no receiver accepted.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct BenchReport {
    pub cycles: u32,
    pub sent: u64,
    pub lost: u64,
    pub duplicate: u64,
    /// Messages that needed more than one round (a receiver was down).
    pub retried: u64,
    /// Messages delivered by a secondary channel.
    pub failovers: u64,
    pub out_of_order: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("bench: {0}")]
    Setup(String),
    #[error("bench: not everything was delivered within {0:?}; {1} still pending")]
    Timeout(Duration, u64),
}

/// Five receivers: lane A = webhook → slack, lane B = pagerduty → teams →
/// email.
pub struct Rig {
    pub hook: Receiver,
    pub slack: Receiver,
    pub pagerduty: Receiver,
    pub teams: Receiver,
    pub smtp: Receiver,
}

impl Rig {
    pub async fn start() -> std::io::Result<Rig> {
        Ok(Rig {
            hook: Receiver::http().await?,
            slack: Receiver::http().await?,
            pagerduty: Receiver::http().await?,
            teams: Receiver::http().await?,
            smtp: Receiver::smtp().await?,
        })
    }

    /// The five receivers on `ip` (another loopback address, see
    /// [`Receiver::on`]).
    pub async fn start_on(ip: std::net::Ipv4Addr) -> std::io::Result<Rig> {
        Ok(Rig {
            hook: Receiver::on(ip, false).await?,
            slack: Receiver::on(ip, false).await?,
            pagerduty: Receiver::on(ip, false).await?,
            teams: Receiver::on(ip, false).await?,
            smtp: Receiver::on(ip, true).await?,
        })
    }

    /// A config whose channels point at the receivers; retries are fast.
    pub fn config(&self) -> NotifyConfig {
        let mut channels = BTreeMap::new();
        channels.insert(
            "hook".to_string(),
            ChannelSpec::Webhook {
                url: self.hook.url("/hook"),
                secret_env: Some("MEDIC_BENCH_SECRET".into()),
            },
        );
        channels.insert(
            "slack".to_string(),
            ChannelSpec::Slack {
                url: self.slack.url("/slack"),
            },
        );
        channels.insert(
            "pd".to_string(),
            ChannelSpec::PagerDuty {
                url: self.pagerduty.url("/v2/enqueue"),
                routing_key: "bench-key".into(),
            },
        );
        channels.insert(
            "teams".to_string(),
            ChannelSpec::Teams {
                url: self.teams.url("/teams"),
            },
        );
        channels.insert(
            "mail".to_string(),
            ChannelSpec::Email {
                host: self.smtp.addr().ip().to_string(),
                port: self.smtp.addr().port(),
                starttls: false,
                from: "medic@localhost".into(),
                to: vec!["oncall@localhost".into()],
                username: None,
                password_env: None,
            },
        );
        NotifyConfig {
            timeout: Duration::from_secs(2),
            outbox_capacity: 100_000,
            retry: NotifyRetry {
                base: Duration::from_millis(5),
                cap: Duration::from_millis(50),
                jitter: Duration::from_millis(5),
            },
            channels,
            routes: vec![
                RouteSpec {
                    severities: vec![],
                    services: vec![],
                    channels: vec!["hook".into(), "slack".into()],
                },
                RouteSpec {
                    severities: vec![Severity::Critical],
                    services: vec![],
                    channels: vec!["pd".into(), "teams".into(), "mail".into()],
                },
            ],
            escalation: vec![],
        }
    }

    pub fn all(&mut self) -> [&mut Receiver; 5] {
        [
            &mut self.hook,
            &mut self.slack,
            &mut self.pagerduty,
            &mut self.teams,
            &mut self.smtp,
        ]
    }
}

/// The secret the bench's webhook channel signs with.
pub const BENCH_SECRET: &str = "bench-secret";

pub fn bench_secret(var: &str) -> Option<String> {
    (var == "MEDIC_BENCH_SECRET").then(|| BENCH_SECRET.to_string())
}

/// `cycles` rounds of: queue messages, kill some receivers (all of them
/// every fifth cycle), let the notifier fail and retry, restart them. Then
/// wait until the outbox is empty and count.
pub async fn run(cycles: u32, per_cycle: u32) -> Result<BenchReport, BenchError> {
    let dir = tempfile_dir()?;
    let store = Store::open(&dir.join("bench.db"))
        .await
        .map_err(|e| BenchError::Setup(e.to_string()))?;
    let mut rig = Rig::start()
        .await
        .map_err(|e| BenchError::Setup(format!("receivers: {e}")))?;
    let cfg = rig.config();
    let notifier = Notifier::new(store.clone(), &cfg, &bench_secret).map_err(BenchError::Setup)?;
    let stats = notifier.stats();
    let wake = notifier.waker();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(notifier.run(stop_rx));

    let mut queued: Vec<(String, Vec<String>)> = Vec::new(); // (msg_id, lane)
    let mut rng: u64 = 0x2545_F491_4F6C_DD1D;
    for cycle in 0..cycles {
        for k in 0..per_cycle {
            let critical = k % 2 == 0;
            let n = Notification {
                severity: if critical {
                    Severity::Critical
                } else {
                    Severity::Warning
                },
                service: format!("svc{}", k % 3),
                incident: Some(IncidentId(format!("inc-{cycle}-{k}"))),
                title: format!("cycle {cycle} message {k}"),
                message: "bench".into(),
            };
            let msgs = plan::messages(&cfg, &n, crate::deliver::unix_ms());
            store
                .append_step(
                    &crate::deliver::now_rfc3339(),
                    &[],
                    &msgs,
                    cfg.outbox_capacity,
                )
                .await
                .map_err(|e| BenchError::Setup(e.to_string()))?;
            for m in msgs {
                queued.push((m.msg_id, m.channels.unwrap_or_default()));
            }
        }
        wake.notify_one();
        // Let some of it go out, then kill.
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        tokio::time::sleep(Duration::from_millis(rng % 6)).await;
        let all_down = cycle % 5 == 4;
        let mask = if all_down { 0b11111 } else { (rng >> 8) % 32 };
        for (i, r) in rig.all().into_iter().enumerate() {
            if mask & (1 << i) != 0 {
                r.kill().await;
            }
        }
        tokio::time::sleep(Duration::from_millis(15)).await;
        for r in rig.all() {
            if !r.is_up() {
                r.restart()
                    .await
                    .map_err(|e| BenchError::Setup(format!("restart: {e}")))?;
            }
        }
        wake.notify_one();
    }
    let limit = Duration::from_secs(60);
    let start = tokio::time::Instant::now();
    loop {
        let depth = store
            .outbox_depth()
            .await
            .map_err(|e| BenchError::Setup(e.to_string()))?;
        if depth == 0 {
            break;
        }
        if start.elapsed() > limit {
            let _ = stop_tx.send(true);
            let _ = task.await;
            return Err(BenchError::Timeout(limit, depth));
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let _ = stop_tx.send(true);
    let _ = task.await;

    let report = tally(
        &mut rig,
        &queued,
        &store,
        cycles,
        stats.failovers.load(std::sync::atomic::Ordering::Relaxed),
    )
    .await;
    for r in rig.all() {
        r.kill().await;
    }
    store.close().await;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(report)
}

/// Counts, from what the receivers recorded: lost, duplicated and
/// out-of-order messages of `queued` (msg_id, lane).
async fn tally(
    rig: &mut Rig,
    queued: &[(String, Vec<String>)],
    store: &Store,
    cycles: u32,
    failovers: u64,
) -> BenchReport {
    // Count by lane: what each lane's receivers accepted, in order.
    let lane_of_receiver = |i: usize| if i < 2 { 0 } else { 1 };
    let mut got: [Vec<String>; 2] = [Vec::new(), Vec::new()];
    for (i, r) in rig.all().into_iter().enumerate() {
        for rec in r.received() {
            got[lane_of_receiver(i)].push(rec.id);
        }
    }
    let mut counts: BTreeMap<&str, u64> = BTreeMap::new();
    for ids in &got {
        for id in ids {
            *counts.entry(id.as_str()).or_default() += 1;
        }
    }
    let mut report = BenchReport {
        cycles,
        sent: queued.len() as u64,
        lost: 0,
        duplicate: 0,
        retried: 0,
        failovers,
        out_of_order: 0,
    };
    for (id, _) in queued {
        match counts.get(id.as_str()) {
            None | Some(0) => report.lost += 1,
            Some(1) => {}
            Some(n) => report.duplicate += n - 1,
        }
        if let Ok(Some(m)) = store.outbox_get(id).await {
            if m.attempts > 1 {
                report.retried += 1;
            }
        }
    }
    // Order: per lane, the queue order restricted to one receiver must be
    // increasing (a lane delivers its head before the next message).
    for (lane_idx, lane_recv) in [(0usize, [0usize, 1].as_slice()), (1, [2, 3, 4].as_slice())] {
        let pos: BTreeMap<&str, usize> = queued
            .iter()
            .filter(|(_, lane)| lane.len() == if lane_idx == 0 { 2 } else { 3 })
            .enumerate()
            .map(|(i, (id, _))| (id.as_str(), i))
            .collect();
        for &ri in lane_recv {
            let r = &rig.all()[ri];
            let seq: Vec<usize> = r
                .received()
                .iter()
                .filter_map(|rec| pos.get(rec.id.as_str()).copied())
                .collect();
            report.out_of_order += seq.windows(2).filter(|w| w[1] < w[0]).count() as u64;
        }
    }
    report
}

fn tempfile_dir() -> Result<std::path::PathBuf, BenchError> {
    let dir = std::env::temp_dir().join(format!("medic-bench-notify-{}", plan::new_id()));
    std::fs::create_dir_all(&dir).map_err(|e| BenchError::Setup(format!("temp dir: {e}")))?;
    Ok(dir)
}

/// Result of [`run_outage`]: every channel down for `outage_s` while
/// notifications keep coming, then back.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct OutageReport {
    pub outage_s: f64,
    /// Outbox rows queued (a critical notification is queued on both lanes).
    pub sent: u64,
    /// Of those, queued while every channel was down.
    pub sent_during_outage: u64,
    /// Rows accepted by exactly one receiver of their lane.
    pub delivered: u64,
    pub lost: u64,
    pub duplicate: u64,
    pub out_of_order: u64,
    /// The retry backoff in force: `min(cap, base·2^n) + random(0..jitter)`.
    pub retry_base_s: f64,
    pub retry_cap_s: f64,
    pub retry_jitter_s: f64,
    /// From the receivers' restart to the first message accepted.
    pub resume_s: f64,
    /// From the receivers' restart to an empty outbox.
    pub drain_s: f64,
}

/// Queues one notification (critical when `critical`): one row on lane A,
/// and on lane B too when critical. Returns `(msg_id, lane)` per row.
async fn queue_one(
    store: &Store,
    cfg: &NotifyConfig,
    tag: &str,
    k: u64,
    critical: bool,
) -> Result<Vec<(String, Vec<String>)>, BenchError> {
    let n = Notification {
        severity: if critical {
            Severity::Critical
        } else {
            Severity::Warning
        },
        service: format!("svc{}", k % 3),
        incident: Some(IncidentId(format!("inc-{tag}-{k}"))),
        title: format!("{tag} message {k}"),
        message: "bench".into(),
    };
    let msgs = plan::messages(cfg, &n, crate::deliver::unix_ms());
    store
        .append_step(
            &crate::deliver::now_rfc3339(),
            &[],
            &msgs,
            cfg.outbox_capacity,
        )
        .await
        .map_err(|e| BenchError::Setup(e.to_string()))?;
    Ok(msgs
        .into_iter()
        .map(|m| (m.msg_id, m.channels.unwrap_or_default()))
        .collect())
}

/// Every channel (webhook, Slack, Teams, PagerDuty fakes on loopback and the
/// SMTP server) down for `outage` while one notification is queued every
/// `every` (every other one critical), then all back. Uses the production
/// retry backoff ([`NotifyRetry::default`]), so `resume_s` shows how soon
/// delivery resumes after an outage of that length. Then waits for the
/// outbox to drain and counts lost, duplicate and out-of-order rows.
pub async fn run_outage(outage: Duration, every: Duration) -> Result<OutageReport, BenchError> {
    let dir = tempfile_dir()?;
    let store = Store::open(&dir.join("bench.db"))
        .await
        .map_err(|e| BenchError::Setup(e.to_string()))?;
    // On their own loopback address: the outage may run for minutes beside
    // other tests, which must not take the receivers' ports while they are down.
    let mut rig = Rig::start_on(std::net::Ipv4Addr::new(127, 77, 12, 1))
        .await
        .map_err(|e| BenchError::Setup(format!("receivers: {e}")))?;
    let mut cfg = rig.config();
    cfg.retry = NotifyRetry::default();
    let notifier = Notifier::new(store.clone(), &cfg, &bench_secret).map_err(BenchError::Setup)?;
    let wake = notifier.waker();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(notifier.run(stop_rx));
    let mut queued: Vec<(String, Vec<String>)> = Vec::new();
    let mut k = 0u64;

    // Before: everything up, a few messages go through.
    for _ in 0..4 {
        queued.extend(queue_one(&store, &cfg, "before", k, k.is_multiple_of(2)).await?);
        k += 1;
    }
    wake.notify_one();
    tokio::time::sleep(Duration::from_millis(500)).await;

    // The outage: all five receivers down, notifications keep coming.
    for r in rig.all() {
        r.kill().await;
    }
    let before_outage = queued.len();
    let down = tokio::time::Instant::now();
    while down.elapsed() < outage {
        queued.extend(queue_one(&store, &cfg, "outage", k, k.is_multiple_of(2)).await?);
        k += 1;
        wake.notify_one();
        tokio::time::sleep(every.min(outage.saturating_sub(down.elapsed()))).await;
    }
    let sent_during_outage = (queued.len() - before_outage) as u64;

    // Back: restart everything; a few more messages arrive meanwhile.
    for r in rig.all() {
        r.restart()
            .await
            .map_err(|e| BenchError::Setup(format!("restart: {e}")))?;
    }
    let back = tokio::time::Instant::now();
    let count = |rig: &mut Rig| rig.all().iter().map(|r| r.count()).sum::<usize>();
    let at_back = count(&mut rig);
    for _ in 0..4 {
        queued.extend(queue_one(&store, &cfg, "after", k, k.is_multiple_of(2)).await?);
        k += 1;
    }
    let limit = cfg.retry.cap + cfg.retry.jitter + Duration::from_secs(120);
    let mut resume = None;
    loop {
        if resume.is_none() && count(&mut rig) > at_back {
            resume = Some(back.elapsed());
        }
        let depth = store
            .outbox_depth()
            .await
            .map_err(|e| BenchError::Setup(e.to_string()))?;
        if depth == 0 {
            break;
        }
        if back.elapsed() > limit {
            let _ = stop_tx.send(true);
            let _ = task.await;
            return Err(BenchError::Timeout(limit, depth));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let drain = back.elapsed();
    let resume = resume.unwrap_or(drain);
    let _ = stop_tx.send(true);
    let _ = task.await;
    let t = tally(&mut rig, &queued, &store, 1, 0).await;
    for r in rig.all() {
        r.kill().await;
    }
    store.close().await;
    let _ = std::fs::remove_dir_all(&dir);
    let secs = |d: Duration| (d.as_secs_f64() * 1000.0).round() / 1000.0;
    Ok(OutageReport {
        outage_s: secs(outage),
        sent: t.sent,
        sent_during_outage,
        delivered: t.sent - t.lost,
        lost: t.lost,
        duplicate: t.duplicate,
        out_of_order: t.out_of_order,
        retry_base_s: secs(cfg.retry.base),
        retry_cap_s: secs(cfg.retry.cap),
        retry_jitter_s: secs(cfg.retry.jitter),
        resume_s: secs(resume),
        drain_s: secs(drain),
    })
}
